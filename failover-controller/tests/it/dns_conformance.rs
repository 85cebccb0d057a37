//! DNS protocol conformance, checked with the tools resolver operators use
//! (dig, ldns's drill, dnsviz) against a controller built in-process: EDNS(0)
//! (RFC 6891) and BADVERS, truncation to the client's UDP payload and the
//! retry over TCP, ANY (RFC 8482), SOA and negative caching (RFC 2308), AA,
//! NS at the apex, the question's case echoed (0x20), NODATA against
//! NXDOMAIN, and REFUSED outside the zone.

use crate::dns_tools::{
    dig, drill, region_addresses, run_tool, shared_dns, Response, CLIENT_REGION_1, CLIENT_REGION_2,
    LARGE_REGION_INSTANCES,
};

const SERVICE: &str = "api.svc.failover.test.";
const APEX: &str = "svc.failover.test.";

fn sorted_data(response: &Response) -> Vec<String> {
    let mut data: Vec<String> = response.answer.iter().map(|rr| rr.data.clone()).collect();
    data.sort();
    data
}

fn sorted(mut addresses: Vec<String>) -> Vec<String> {
    addresses.sort();
    addresses
}

#[test]
fn every_edns_response_carries_an_opt_with_the_servers_payload_size() {
    let dns = shared_dns();
    for args in [
        vec![SERVICE, "A"],
        vec!["nothing.svc.failover.test.", "A"],
        vec!["example.org.", "A"],
        vec!["+opcode=status", SERVICE, "A"],
    ] {
        let args = [&["+bufsize=4096"], &args[..]].concat();
        let response = dig(dns, CLIENT_REGION_1, &args);
        let opt = response
            .opt
            .as_ref()
            .unwrap_or_else(|| panic!("no OPT in the response to {args:?}:\n{}", response.text));
        assert_eq!((opt.version, opt.udp), (0, 1232), "{args:?}");
    }
    let plain = dig(dns, CLIENT_REGION_1, &["+noedns", SERVICE, "A"]);
    assert!(plain.opt.is_none(), "no OPT without EDNS:\n{}", plain.text);
    let dnssec_ok = dig(dns, CLIENT_REGION_1, &["+dnssec", SERVICE, "A"]);
    assert_eq!(
        dnssec_ok.opt.unwrap().flags,
        "do",
        "the DO bit is copied (RFC 3225)"
    );
}

#[test]
fn an_edns_version_above_0_is_answered_badvers_with_an_opt() {
    let response = dig(
        shared_dns(),
        CLIENT_REGION_1,
        &["+edns=1", "+noednsneg", SERVICE, "A"],
    );
    assert_eq!(response.status, "BADVERS", "{}", response.text);
    assert_eq!(
        response.opt.as_ref().map(|o| o.version),
        Some(0),
        "{}",
        response.text
    );
    assert!(response.answer.is_empty(), "{}", response.text);
}

#[test]
fn udp_answers_fit_the_clients_payload_or_are_truncated() {
    let dns = shared_dns();
    // 120 A records need about 1,960 bytes: too many for 512 (no EDNS, or
    // EDNS with 512) and for the server's own 1232, whatever the client says.
    for payload in [&["+noedns"][..], &["+bufsize=512"], &["+bufsize=4096"]] {
        let args = [payload, &["+ignore", SERVICE, "A"]].concat();
        let response = dig(dns, CLIENT_REGION_2, &args);
        assert!(
            response.has_flag("tc"),
            "TC expected for {args:?}:\n{}",
            response.text
        );
        assert!(response.answer.is_empty(), "no partial RRset: {args:?}");
        assert_eq!(response.opt.is_some(), payload != ["+noedns"], "{args:?}");
    }
    // A small answer fits in 512 bytes.
    let small = dig(dns, CLIENT_REGION_1, &["+noedns", "+ignore", SERVICE, "A"]);
    assert!(!small.has_flag("tc"), "{}", small.text);
    assert_eq!(sorted_data(&small), sorted(region_addresses(1)));
}

#[test]
fn a_truncated_answer_comes_whole_over_tcp() {
    let dns = shared_dns();
    let retried = dig(dns, CLIENT_REGION_2, &["+bufsize=512", SERVICE, "A"]);
    assert_eq!(
        retried.transport, "TCP",
        "dig retries over TCP after TC:\n{}",
        retried.text
    );
    let tcp = dig(dns, CLIENT_REGION_2, &["+tcp", SERVICE, "A"]);
    for response in [&retried, &tcp] {
        assert!(!response.has_flag("tc"), "{}", response.text);
        assert_eq!(response.answer.len(), LARGE_REGION_INSTANCES);
        assert_eq!(sorted_data(response), sorted(region_addresses(2)));
    }
}

#[test]
fn any_is_answered_with_one_rrset() {
    let dns = shared_dns();
    let service = dig(dns, CLIENT_REGION_1, &[SERVICE, "ANY"]);
    assert_eq!(service.status, "NOERROR");
    assert!(service.has_flag("aa"));
    assert_eq!(
        sorted_data(&service),
        sorted(region_addresses(1)),
        "{}",
        service.text
    );
    assert!(service.answer.iter().all(|rr| rr.rtype == "A"));
    let apex = dig(dns, CLIENT_REGION_1, &[APEX, "ANY"]);
    let types: Vec<&str> = apex.answer.iter().map(|rr| rr.rtype.as_str()).collect();
    assert_eq!(types, ["SOA"], "{}", apex.text);
}

#[test]
fn the_apex_has_soa_and_ns_and_every_answer_is_authoritative() {
    let dns = shared_dns();
    let soa = dig(dns, CLIENT_REGION_1, &[APEX, "SOA"]);
    assert!(soa.has_flag("aa"), "{}", soa.text);
    assert_eq!(soa.answer.len(), 1);
    let fields: Vec<&str> = soa.answer[0].data.split_whitespace().collect();
    assert_eq!(
        fields[..2],
        ["ns1.svc.failover.test.", "hostmaster.svc.failover.test."]
    );
    let ns = dig(dns, CLIENT_REGION_1, &[APEX, "NS"]);
    assert!(ns.has_flag("aa"));
    assert_eq!(sorted_data(&ns), ["ns1.svc.failover.test."]);
    let a = dig(dns, CLIENT_REGION_1, &[SERVICE, "A"]);
    assert!(a.has_flag("aa") && !a.has_flag("ra"), "{}", a.text);
}

/// RFC 2308: the SOA of a negative answer has TTL min(SOA TTL, MINIMUM).
fn assert_negative(response: &Response, status: &str) {
    assert_eq!(response.status, status, "{}", response.text);
    assert!(response.has_flag("aa"), "{}", response.text);
    assert!(response.answer.is_empty(), "{}", response.text);
    let soa = match &response.authority[..] {
        [soa] if soa.rtype == "SOA" => soa,
        other => panic!("one SOA in authority expected, got {other:?}"),
    };
    let minimum: u32 = soa.data.split_whitespace().last().unwrap().parse().unwrap();
    let soa_ttl = dig(shared_dns(), CLIENT_REGION_1, &[APEX, "SOA"]).answer[0].ttl;
    assert_eq!(soa.ttl, soa_ttl.min(minimum), "negative TTL");
}

#[test]
fn nodata_and_nxdomain_carry_the_soa_with_the_negative_caching_ttl() {
    let dns = shared_dns();
    assert_negative(&dig(dns, CLIENT_REGION_1, &[SERVICE, "AAAA"]), "NOERROR");
    assert_negative(&dig(dns, CLIENT_REGION_1, &[SERVICE, "TXT"]), "NOERROR");
    assert_negative(&dig(dns, CLIENT_REGION_1, &[APEX, "A"]), "NOERROR");
    assert_negative(
        &dig(dns, CLIENT_REGION_1, &["nothing.svc.failover.test.", "A"]),
        "NXDOMAIN",
    );
    assert_negative(
        &dig(dns, CLIENT_REGION_1, &["x.api.svc.failover.test.", "A"]),
        "NXDOMAIN",
    );
}

#[test]
fn the_question_case_is_echoed_in_the_question_and_the_owner_names() {
    let dns = shared_dns();
    let answer = dig(dns, CLIENT_REGION_1, &["aPi.SvC.failover.TEST.", "A"]);
    assert_eq!(
        answer.question[0].split_whitespace().next(),
        Some("aPi.SvC.failover.TEST.")
    );
    assert!(!answer.answer.is_empty());
    for rr in &answer.answer {
        assert_eq!(rr.owner, "aPi.SvC.failover.TEST.", "{}", answer.text);
    }
    let negative = dig(dns, CLIENT_REGION_1, &["NoThing.SvC.failover.TEST.", "A"]);
    assert_eq!(
        negative.authority[0].owner, "SvC.failover.TEST.",
        "{}",
        negative.text
    );
}

#[test]
fn names_outside_the_zone_are_refused() {
    let dns = shared_dns();
    for args in [
        vec!["example.org.", "A"],
        vec!["failover.test.", "SOA"],
        vec!["-c", "CH", "version.bind.", "TXT"],
    ] {
        let response = dig(dns, CLIENT_REGION_1, &args);
        assert_eq!(response.status, "REFUSED", "{args:?}:\n{}", response.text);
        assert!(!response.has_flag("aa"), "{args:?}");
        assert!(response.answer.is_empty() && response.authority.is_empty());
    }
}

#[test]
fn ldns_drill_reads_the_same_answers_over_udp_and_tcp() {
    let dns = shared_dns();
    for transport in ["-u", "-t"] {
        let response = drill(
            dns,
            CLIENT_REGION_1,
            &[transport, "-b", "1232", "aPi.SvC.failover.TEST", "A"],
        );
        assert_eq!(response.status, "NOERROR", "{}", response.text);
        assert!(response.has_flag("aa"));
        assert_eq!(
            response.opt.as_ref().map(|o| o.udp),
            Some(1232),
            "{}",
            response.text
        );
        assert_eq!(sorted_data(&response), sorted(region_addresses(1)));
        assert!(response
            .answer
            .iter()
            .all(|rr| rr.owner == "aPi.SvC.failover.TEST."));
    }
}

#[test]
fn dnsviz_finds_no_errors_or_warnings() {
    let dns = shared_dns();
    let dir = std::env::temp_dir().join(format!("fc-dnsviz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let probe = dir.join("probe.json");
    // Authoritative analysis of the zone at this server only ("+": no
    // queries to the parent or the root), with dnsviz's EDNS checks.
    let servers = format!("{APEX}+:ns1.{APEX}={}:{}", dns.ip(), dns.port());
    let args = [
        "probe",
        "-A",
        "-E",
        "-x",
        &servers,
        "-b",
        CLIENT_REGION_1,
        "-o",
    ];
    let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    argv.extend([probe.display().to_string(), APEX.into(), SERVICE.into()]);
    run_tool("dnsviz", &argv);
    let grok = run_tool(
        "dnsviz",
        &["grok".into(), "-r".into(), probe.display().to_string()],
    );
    std::fs::remove_dir_all(&dir).ok();
    let findings: serde_json::Value = serde_json::from_str(&grok).expect("dnsviz grok JSON");
    for name in [APEX, SERVICE] {
        assert!(
            findings[name]["queries"].is_object(),
            "{name} not analysed:\n{grok}"
        );
    }
    let mut found = Vec::new();
    collect_findings(&findings, "", &mut found);
    assert!(found.is_empty(), "dnsviz findings:\n{}", found.join("\n"));
}

/// Every "errors" and "warnings" entry of dnsviz grok's output, with where.
fn collect_findings(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                if key == "errors" || key == "warnings" {
                    for finding in child.as_array().into_iter().flatten() {
                        found.push(format!(
                            "{path}: {} {}",
                            finding["code"], finding["description"]
                        ));
                    }
                } else {
                    collect_findings(child, &format!("{path}/{key}"), found);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_findings(item, path, found);
            }
        }
        _ => {}
    }
}

#[test]
fn a_malformed_query_gets_formerr_and_a_response_gets_nothing() {
    let dns = shared_dns();
    let socket = std::net::UdpSocket::bind((CLIENT_REGION_1, 0)).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    // A header that announces one question, then a name cut short.
    let id = [0x12, 0x34];
    let malformed = [
        &id[..],
        &[0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', b'p'],
    ]
    .concat();
    socket.send_to(&malformed, dns).unwrap();
    let mut buffer = [0u8; 512];
    let (len, _) = socket
        .recv_from(&mut buffer)
        .expect("an answer to a malformed query");
    assert!(len >= 12);
    assert_eq!(buffer[..2], id, "same id");
    assert_eq!(buffer[2] & 0x80, 0x80, "QR set");
    assert_eq!(buffer[3] & 0x0f, 1, "RCODE FORMERR");
    // The same bytes with QR set are a response: never answered (no reflection).
    let response = [
        &id[..],
        &[0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', b'p'],
    ]
    .concat();
    socket.send_to(&response, dns).unwrap();
    assert!(
        socket.recv_from(&mut buffer).is_err(),
        "a response was answered"
    );
}
