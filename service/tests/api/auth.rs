//! Authentication and ownership: every API route refuses a missing or
//! wrong credential alike; a principal sees and debits only its own
//! accounts; idempotency keys are the principal's own; JWTs are checked
//! for issuer, audience and expiry; a wrong API key is answered as fast as
//! a right prefix with a wrong secret.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{create_database, problem, server_url, test_settings, TestApp};

/// Every API operation of the OpenAPI document, as (method, path).
async fn api_operations(app: &TestApp) -> Vec<(Method, String)> {
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let path = path.replace("{id}", &Uuid::new_v4().to_string());
            operations.push((method.to_uppercase().parse().unwrap(), path));
        }
    }
    assert!(operations.len() >= 5, "{operations:?}");
    operations
}

#[tokio::test]
async fn every_api_route_refuses_missing_and_wrong_credentials_alike() {
    let app = TestApp::spawn().await;
    let before = app.database_snapshot().await;
    let known_prefix = app.key.rsplit_once('_').unwrap().0.to_owned();
    let credentials: [(&str, Option<String>); 5] = [
        ("none", None),
        ("not bearer", Some(format!("Basic {}", app.key))),
        ("garbage", Some("Bearer not-a-key".into())),
        (
            "unknown prefix",
            Some(format!("Bearer lk_ffffffffffff_{}", "ab".repeat(32))),
        ),
        (
            "right prefix, wrong secret",
            Some(format!("Bearer {known_prefix}_{}", "ab".repeat(32))),
        ),
    ];
    let mut bodies = std::collections::BTreeSet::new();
    for (method, path) in api_operations(&app).await {
        for (name, credential) in &credentials {
            let mut request = app
                .anonymous
                .request(method.clone(), format!("{}{path}", app.address))
                .header("Idempotency-Key", "k")
                .json(&json!({"owner": "x", "opening_balance": 1}));
            if let Some(credential) = credential {
                request = request.header("Authorization", credential);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {name}"
            );
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                challenge.starts_with("Bearer realm=\"ledger\""),
                "{challenge}"
            );
            assert_eq!(
                challenge.contains("invalid_token"),
                credential.is_some(),
                "{name}: {challenge}"
            );
            let (_, body) = problem(response).await;
            bodies.insert(body.to_string());
        }
    }
    assert_eq!(bodies.len(), 1, "one body for every refusal: {bodies:?}");
    assert_eq!(app.database_snapshot().await, before, "nothing changed");
    // Health probes and the document need no credentials.
    for path in [
        "/livez",
        "/readyz",
        "/healthz/region",
        "/healthz/instance",
        "/openapi.json",
    ] {
        let status = app
            .anonymous
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_principal_reads_and_debits_only_its_own_accounts() {
    let app = TestApp::spawn().await;
    let alice = app.principal("alice", "").await;
    let mallory = app.principal("mallory", "").await;
    let create = |owner: &str| json!({"owner": owner, "opening_balance": 100});
    let created: Value = app
        .post_as(&alice, "/v1/accounts", "a1", &create("alice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["principal"], "alice");
    let alices = created["id"].as_str().unwrap().to_owned();
    let mallorys: Value = app
        .post_as(&mallory, "/v1/accounts", "m1", &create("mallory"))
        .await
        .json()
        .await
        .unwrap();
    let mallorys = mallorys["id"].as_str().unwrap().to_owned();
    let paid: Value = app
        .post_as(
            &alice,
            "/v1/transfers",
            "pay",
            &json!({"from": alices, "to": mallorys, "amount": 10}),
        )
        .await
        .json()
        .await
        .unwrap();
    let before = app.database_snapshot().await;

    // Mallory cannot read Alice's account, nor debit it: both answer as for
    // an account that does not exist, and nothing changes.
    let (status, _) = problem(
        app.get_as(&mallory, &format!("/v1/accounts/{alices}"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = problem(
        app.post_as(
            &mallory,
            "/v1/transfers",
            "steal",
            &json!({"from": alices, "to": mallorys, "amount": 50}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (accounts, transfers, total, keys) = before;
    assert_eq!(
        app.database_snapshot().await,
        (accounts, transfers, total, keys + 1)
    );
    let balance: Value = app
        .get_as(&alice, &format!("/v1/accounts/{alices}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], 90);
    // A transfer is visible to payer and payee, not to a third principal.
    let transfer = format!("/v1/transfers/{}", paid["id"].as_str().unwrap());
    assert_eq!(app.get_as(&alice, &transfer).await.status(), StatusCode::OK);
    assert_eq!(
        app.get_as(&mallory, &transfer).await.status(),
        StatusCode::OK
    );
    let eve = app.principal("eve", "").await;
    assert_eq!(
        app.get_as(&eve, &transfer).await.status(),
        StatusCode::NOT_FOUND
    );
    // The summary (a full scan) needs the admin scope; the admin reads all.
    let (status, _) = problem(app.get_as(&alice, "/v1/ledger/summary").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/v1/ledger/summary").await.status(), StatusCode::OK);
    assert_eq!(
        app.get(&format!("/v1/accounts/{alices}")).await.status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_principal() {
    let app = TestApp::spawn().await;
    let alice = app.principal("alice", "").await;
    let bob = app.principal("bob", "").await;
    let body = json!({"owner": "same", "opening_balance": 5});
    let first = app
        .post_as(&alice, "/v1/accounts", "shared-key", &body)
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    // Bob's request with the same key and body is his own: a new account,
    // not a replay of Alice's answer.
    let second = app.post_as(&bob, "/v1/accounts", "shared-key", &body).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    assert!(!second.headers().contains_key("idempotent-replayed"));
    let second: Value = second.json().await.unwrap();
    assert_ne!(first["id"], second["id"]);
    assert_eq!(second["principal"], "bob");
    // With another body Bob is not blocked by Alice's key either.
    let third = app
        .post_as(
            &bob,
            "/v1/transfers",
            "shared-key",
            &json!({"from": second["id"], "to": first["id"], "amount": 1}),
        )
        .await;
    assert_eq!(third.status(), StatusCode::CREATED);
    let again = app
        .post_as(
            &bob,
            "/v1/transfers",
            "shared-key",
            &json!({"from": second["id"], "to": first["id"], "amount": 1}),
        )
        .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    // Alice replaying her key still gets her own answer.
    let replay: Value = app
        .post_as(&alice, "/v1/accounts", "shared-key", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replay, first);
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_within_the_refresh_interval() {
    let app = TestApp::spawn().await;
    let key = crate::helpers::create_key(&app.pool, "temp", "").await;
    let client = crate::helpers::client_with_key(&key);
    let path = format!("/v1/accounts/{}", Uuid::new_v4());
    let accepted = crate::helpers::eventually(Duration::from_secs(3), || async {
        app.get_as(&client, &path).await.status() == StatusCode::NOT_FOUND
    })
    .await;
    assert!(accepted.is_some(), "the new key was never accepted");
    let mut connection = app.pool.acquire().await.unwrap();
    assert!(service::auth::api_keys::revoke(&mut connection, &key)
        .await
        .unwrap());
    let refused = crate::helpers::eventually(Duration::from_secs(3), || async {
        app.get_as(&client, &path).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused.is_some(), "the revoked key is still accepted");
    app.stop().await;
}

/// Median answer time of `count` requests with `credential`.
async fn median_latency(app: &TestApp, credential: &str, count: usize) -> Duration {
    let mut times = Vec::with_capacity(count);
    let path = format!("{}/v1/accounts/{}", app.address, Uuid::new_v4());
    for _ in 0..count {
        let started = Instant::now();
        let status = app
            .anonymous
            .get(&path)
            .header("Authorization", credential)
            .send()
            .await
            .unwrap()
            .status();
        times.push(started.elapsed());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    times.sort();
    times[count / 2]
}

#[tokio::test]
async fn a_wrong_key_is_answered_as_fast_as_a_right_prefix_with_a_wrong_secret() {
    let app = TestApp::spawn().await;
    let known_prefix = app.key.rsplit_once('_').unwrap().0.to_owned();
    let wrong_secret = format!("Bearer {known_prefix}_{}", "ab".repeat(32));
    let unknown_prefix = format!("Bearer lk_0123456789ab_{}", "ab".repeat(32));
    // Warm up, then interleave rounds so that drift hits both alike.
    median_latency(&app, &wrong_secret, 50).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        known.push(median_latency(&app, &wrong_secret, 200).await);
        unknown.push(median_latency(&app, &unknown_prefix, 200).await);
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[2], unknown[2]);
    let difference = known.abs_diff(unknown);
    println!(
        "median 401 latency: right prefix, wrong secret {known:?}; unknown prefix {unknown:?}"
    );
    // Within noise: no database round trip on either path (that would be
    // 100 µs or more on loopback), so no more than 50 µs or a fifth apart.
    assert!(
        difference < Duration::from_micros(50).max(known / 5),
        "right prefix {known:?} vs unknown prefix {unknown:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn jwts_are_checked_for_signature_issuer_audience_and_expiry() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = signing.public_key_raw();
    assert_eq!(point[0], 4, "an uncompressed P-256 point");
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    let dir = std::env::temp_dir().join(format!("jwks-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();

    let url = create_database(&server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.auth_jwt_jwks = jwks_path.display().to_string();
    settings.auth_jwt_issuer = "https://idp.example".into();
    settings.auth_jwt_audience = "ledger".into();
    settings.auth_jwt_leeway_s = 5;
    let app = TestApp::spawn_on(settings, true).await;

    let now = jsonwebtoken::get_current_timestamp();
    let token = |key: &rcgen::KeyPair, claims: Value| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        encode(&header, &claims, &key).unwrap()
    };
    let claims = |iss: &str, aud: &str, exp: u64| json!({"sub": "jwt-user", "iss": iss, "aud": aud, "exp": exp, "scope": "read write"});
    let good = token(&signing, claims("https://idp.example", "ledger", now + 60));
    let cases = [
        ("valid", good.clone(), StatusCode::CREATED),
        (
            "expired beyond the leeway",
            token(&signing, claims("https://idp.example", "ledger", now - 60)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong audience",
            token(&signing, claims("https://idp.example", "other", now + 60)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong issuer",
            token(&signing, claims("https://evil.example", "ledger", now + 60)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "signed by another key",
            token(&other, claims("https://idp.example", "ledger", now + 60)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no expiry",
            token(
                &signing,
                json!({"sub": "jwt-user", "iss": "https://idp.example", "aud": "ledger"}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","kid":"k1"}"#),
                good.split('.').nth(1).unwrap()
            ),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (n, (name, token, expected)) in cases.into_iter().enumerate() {
        let response = app
            .anonymous
            .post(format!("{}/v1/accounts", app.address))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("jwt-{n}"))
            .json(&json!({"owner": "j", "opening_balance": 1}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, expected, "{name}: {body}");
        if status == StatusCode::CREATED {
            assert_eq!(body["principal"], "jwt-user", "the principal is `sub`");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    app.stop().await;
}
