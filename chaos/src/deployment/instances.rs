//! How the drill reaches one instance of a region over HTTPS, apart from
//! the load's first attempt (which asks the service's public name): the
//! retry on the next region, the seeding, the verification's summary, the
//! stop conditions and the restore check.
//!
//! A real deployment's load balancers have certificates for host names,
//! rarely for addresses. An instance whose endpoint the target file gives
//! by host name is asked by that name (TLS server name, certificate check
//! and `Host`), its connection pinned to the instance's address, as
//! `curl --resolve` would; an instance given by address is asked by
//! address, as on the local deployment, whose certificate names them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use reqwest::{Client, ClientBuilder, Method, RequestBuilder};

/// HTTPS clients for a deployment's instances, one per named instance
/// (reqwest pins a host name to an address per client) and one shared by
/// those reached by address.
#[derive(Debug, Clone)]
pub struct InstanceHttps {
    by_address: Client,
    named: BTreeMap<SocketAddr, (String, Client)>,
}

impl InstanceHttps {
    /// `names`: the host name of each instance reached by name; `builder`
    /// makes the clients (CA, headers, timeouts).
    pub fn new(
        names: &BTreeMap<SocketAddr, String>,
        builder: impl Fn() -> ClientBuilder,
    ) -> reqwest::Result<Self> {
        let mut named = BTreeMap::new();
        for (address, name) in names {
            let client = builder().resolve(name, *address).build()?;
            named.insert(*address, (name.clone(), client));
        }
        Ok(Self {
            by_address: builder().build()?,
            named,
        })
    }

    /// `https://name:port/path` for a named instance, else
    /// `https://address/path`.
    pub fn url(&self, address: SocketAddr, path: &str) -> String {
        match self.named.get(&address) {
            Some((name, _)) => format!("https://{name}:{}{path}", address.port()),
            None => format!("https://{address}{path}"),
        }
    }

    pub fn request(&self, method: Method, address: SocketAddr, path: &str) -> RequestBuilder {
        let client = self
            .named
            .get(&address)
            .map_or(&self.by_address, |(_, client)| client);
        client.request(method, self.url(address, path))
    }

    pub fn get(&self, address: SocketAddr, path: &str) -> RequestBuilder {
        self.request(Method::GET, address, path)
    }

    pub fn post(&self, address: SocketAddr, path: &str) -> RequestBuilder {
        self.request(Method::POST, address, path)
    }
}

#[cfg(test)]
#[path = "instances_tests.rs"]
mod tests;
