//! What authentication and the rate limit cost per request (issue 17):
//! `Authenticator::authenticate` for valid, wrong and unknown API keys and
//! for JWTs, and `RateLimit::check` for one principal and for many.
//!
//! A plain loop rather than criterion, so that the service gains no
//! dependency for it: each case is calibrated to batches of about 1 ms,
//! warmed up, then run batch after batch; the figures are the median and
//! the 99th percentile of the batches' nanoseconds per call. The p99 is of
//! batch averages, so it shows the machine's interference (other work on
//! shared cores), not the tail of single calls.
//!
//! `scripts/bench-auth.sh` runs it (docs/benchmarks.md). Arguments that do
//! not start with `--` select the cases whose names contain them;
//! `BENCH_AUTH_SECONDS` sets the measured time per case (1).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde_json::json;
use service::auth::api_keys::KeyStore;
use service::auth::jwt::JwtVerifier;
use service::auth::rate_limit::{Decision, RateLimit};
use service::auth::{Authenticator, Principal, Scopes};
use service::config::{Overrides, Settings, DEFAULTS_TOML};

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let seconds: f64 = std::env::var("BENCH_AUTH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1.0);
    let bench = Bench {
        filters,
        measured: Duration::from_secs_f64(seconds),
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: built without optimisations; run `cargo bench` (scripts/bench-auth.sh)"
        );
    }
    println!(
        "{:<58} {:>12} {:>12} {:>9}",
        "case", "median ns", "p99 ns", "batches"
    );

    let jwt = JwtFixture::new();
    for key_count in [10, 10_000] {
        let keys = ApiKeys::new(key_count);
        let auth = Authenticator {
            keys: keys.store.clone(),
            jwt: Some(jwt.verifier.clone()),
        };
        // Presented in turn, so that the 10,000-key map is not one hot entry.
        let valid = &keys.valid;
        bench.run(&format!("api key, valid ({key_count} keys)"), |i| {
            let header = &valid[i % valid.len()];
            black_box(auth.authenticate(Some(header)).expect("a valid key"));
        });
        let wrong = &keys.wrong_secret;
        bench.run(
            &format!("api key, right prefix, wrong secret ({key_count} keys)"),
            |i| {
                let header = &wrong[i % wrong.len()];
                black_box(auth.authenticate(Some(header)).expect_err("a wrong secret"));
            },
        );
        let unknown = &keys.unknown_prefix;
        bench.run(
            &format!("api key, unknown prefix ({key_count} keys)"),
            |i| {
                let header = &unknown[i % unknown.len()];
                black_box(
                    auth.authenticate(Some(header))
                        .expect_err("an unknown prefix"),
                );
            },
        );
    }

    // JWTs go to the verifier whatever the API keys are; 10 keys will do.
    // A token's first use costs its signature check; later uses of the
    // same token are remembered (a hash and a map lookup).
    let auth = Authenticator {
        keys: ApiKeys::new(10).store,
        jwt: Some(jwt.verifier.clone()),
    };
    let first_use = Authenticator {
        keys: ApiKeys::new(10).store,
        jwt: Some(jwt.uncached.clone()),
    };
    for (name, auth, header, valid) in [
        ("jwt ES256, valid, first use", &first_use, &jwt.es256, true),
        (
            "jwt ES256, valid, again (remembered)",
            &auth,
            &jwt.es256,
            true,
        ),
        (
            "jwt EdDSA (Ed25519), valid, first use",
            &first_use,
            &jwt.eddsa,
            true,
        ),
        (
            "jwt ES256, signed by another key",
            &auth,
            &jwt.es256_forged,
            false,
        ),
    ] {
        bench.run(name, |_| {
            let result = black_box(auth.authenticate(Some(header)));
            assert_eq!(result.is_ok(), valid, "{name}: {result:?}");
        });
    }

    let principals: Vec<Arc<str>> = (0..10_000)
        .map(|n| Arc::from(format!("principal-{n}")))
        .collect();
    // A rate no loop can reach, so that every call takes the admitted path.
    let unlimited = rate_limit(1e9, 1_000_000_000);
    bench.run("rate limit, admitted, 1 principal", |_| {
        assert!(matches!(
            black_box(unlimited.check(&principals[0])),
            Decision::Allowed { .. }
        ));
    });
    bench.run("rate limit, admitted, 10,000 principals in turn", |i| {
        let principal = &principals[i % principals.len()];
        assert!(matches!(
            black_box(unlimited.check(principal)),
            Decision::Allowed { .. }
        ));
    });
    // The defaults (100/s, burst 200): past the first 200 calls of the
    // warm-up, every call is refused (429), which is what a flood costs.
    let defaults = rate_limit(100.0, 200);
    bench.run("rate limit, refused (429), 1 principal", |_| {
        black_box(defaults.check(&principals[0]));
    });
}

/// The selected cases and how long to measure each.
struct Bench {
    filters: Vec<String>,
    measured: Duration,
}

impl Bench {
    /// Measures `call` (given the call's index, to cycle through inputs)
    /// and prints one line.
    fn run(&self, name: &str, mut call: impl FnMut(usize)) {
        if !self.filters.is_empty()
            && !self
                .filters
                .iter()
                .any(|filter| name.contains(filter.as_str()))
        {
            return;
        }
        let mut index = 0usize;
        let mut batch = |calls: usize| {
            let start = Instant::now();
            for _ in 0..calls {
                call(index);
                index = index.wrapping_add(1);
            }
            start.elapsed()
        };
        // Calibrate: enough calls per batch for about a millisecond, so
        // that reading the clock is noise.
        let mut calls = 1;
        while batch(calls) < Duration::from_millis(1) {
            calls *= 2;
        }
        let warm_up = Instant::now();
        while warm_up.elapsed() < self.measured / 4 {
            batch(calls);
        }
        let mut per_call_ns = Vec::new();
        let started = Instant::now();
        while started.elapsed() < self.measured || per_call_ns.len() < 100 {
            per_call_ns.push(batch(calls).as_nanos() as f64 / calls as f64);
        }
        per_call_ns.sort_by(f64::total_cmp);
        let percentile =
            |p: f64| per_call_ns[((per_call_ns.len() as f64 * p).ceil() as usize).max(1) - 1];
        println!(
            "{name:<58} {:>12.0} {:>12.0} {:>9}",
            percentile(0.5),
            percentile(0.99),
            format!("{}x{calls}", per_call_ns.len())
        );
    }
}

/// A key store of `count` random keys, and headers presenting them.
struct ApiKeys {
    store: KeyStore,
    /// Up to 10,000 of the stored keys, as `Authorization` headers.
    valid: Vec<HeaderValue>,
    /// Stored prefixes with another secret.
    wrong_secret: Vec<HeaderValue>,
    /// Prefixes that are not stored (well formed, so that the full check runs).
    unknown_prefix: Vec<HeaderValue>,
}

impl ApiKeys {
    fn new(count: usize) -> Self {
        let keys: Vec<(String, String)> = (0..count)
            .map(|_| (random_hex(6), random_hex(32)))
            .collect();
        let store = KeyStore::from_secrets(keys.iter().enumerate().map(|(n, (prefix, secret))| {
            let principal = Principal::new(&format!("principal-{n}"), Scopes::default());
            (prefix.as_str(), secret.as_str(), principal)
        }));
        let bearer = |prefix: &str, secret: &str| {
            HeaderValue::from_str(&format!("Bearer lk_{prefix}_{secret}")).expect("ASCII")
        };
        Self {
            store,
            valid: keys
                .iter()
                .map(|(prefix, secret)| bearer(prefix, secret))
                .collect(),
            wrong_secret: keys
                .iter()
                .map(|(prefix, _)| bearer(prefix, &random_hex(32)))
                .collect(),
            // 48 random bits: a collision with a stored prefix is not a concern.
            unknown_prefix: keys
                .iter()
                .map(|_| bearer(&random_hex(6), &random_hex(32)))
                .collect(),
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut random);
    hex::encode(random)
}

/// A verifier with an ES256 and an Ed25519 key in its JWKS, and tokens,
/// made as tests/api/auth.rs makes them (rcgen keys, a JWKS file).
struct JwtFixture {
    /// Remembers verified tokens (the default).
    verifier: JwtVerifier,
    /// Verifies every call in full (`auth_jwt_cache_size = 0`): a token's
    /// first use.
    uncached: JwtVerifier,
    es256: HeaderValue,
    eddsa: HeaderValue,
    es256_forged: HeaderValue,
}

impl JwtFixture {
    fn new() -> Self {
        let es256 =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let other =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let point = es256.public_key_raw();
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256", "use": "sig",
             "x": b64(&point[1..33]), "y": b64(&point[33..65])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "use": "sig",
             "x": b64(ed25519.public_key_raw())},
        ]});
        let path =
            std::env::temp_dir().join(format!("bench-auth-jwks-{}.json", std::process::id()));
        std::fs::write(&path, jwks.to_string()).expect("write the JWKS");
        let overrides = Overrides {
            region: Some("us-east-1".into()),
            database_url: Some("postgres://bench@localhost/unused".into()),
            auth_jwt_jwks: Some(path.display().to_string()),
            auth_jwt_issuer: Some("https://idp.example".into()),
            auth_jwt_audience: Some("ledger".into()),
            ..Overrides::default()
        };
        let verifier = JwtVerifier::from_settings(&settings(&overrides)).expect("JWTs configured");
        let uncached = JwtVerifier::from_settings(&settings(&Overrides {
            auth_jwt_cache_size: Some(0),
            ..overrides.clone()
        }))
        .expect("JWTs configured");
        // `load` is async (it may fetch a URL); a file needs no more than this.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        for verifier in [&verifier, &uncached] {
            runtime.block_on(verifier.load()).expect("the JWKS loads");
        }
        std::fs::remove_file(&path).ok();

        // Valid for the whole run (an hour), so that no case sees it expire.
        let claims = json!({"sub": "jwt-user", "iss": "https://idp.example", "aud": "ledger",
            "exp": jsonwebtoken::get_current_timestamp() + 3600, "scope": "read write"});
        let token = |algorithm: Algorithm, kid: &str, key: EncodingKey| {
            let mut header = Header::new(algorithm);
            header.kid = Some(kid.into());
            let token = encode(&header, &claims, &key).expect("a signed token");
            HeaderValue::from_str(&format!("Bearer {token}")).expect("ASCII")
        };
        let ec_pem = |key: &rcgen::KeyPair| {
            EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("PEM")
        };
        Self {
            verifier,
            uncached,
            es256: token(Algorithm::ES256, "es", ec_pem(&es256)),
            eddsa: token(
                Algorithm::EdDSA,
                "ed",
                EncodingKey::from_ed_pem(ed25519.serialize_pem().as_bytes()).expect("PEM"),
            ),
            es256_forged: token(Algorithm::ES256, "es", ec_pem(&other)),
        }
    }
}

fn rate_limit(per_second: f64, burst: u32) -> RateLimit {
    let overrides = Overrides {
        region: Some("us-east-1".into()),
        database_url: Some("postgres://bench@localhost/unused".into()),
        rate_limit_per_second: Some(per_second),
        rate_limit_burst: Some(burst),
        ..Overrides::default()
    };
    RateLimit::from_settings(&settings(&overrides)).expect("a rate limit")
}

fn settings(overrides: &Overrides) -> Settings {
    Settings::from_layers(
        DEFAULTS_TOML.parse().expect("the defaults parse"),
        overrides,
    )
    .expect("valid settings")
}
