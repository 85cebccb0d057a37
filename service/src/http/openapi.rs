//! The OpenAPI document's parts that utoipa's attributes do not say: the
//! links between operations, and the security of every `/v1` operation
//! (its scheme, and the 401 and 429 answers that every one of them has).

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ledger API",
        description = "A regional, active-active ledger. Every response carries X-Served-By-Region and X-Served-By-Instance. Errors are application/problem+json (RFC 9457)."
    ),
    tags((name = "ledger", description = "Accounts and transfers"), (name = "health", description = "Kubernetes and Route53 probes")),
    components(schemas(crate::db::ledger::Consistency))
)]
pub(super) struct ApiDoc;

/// OpenAPI links from each created resource to where it can be read, so
/// that clients (and schemathesis' stateful phase in the test command) can
/// follow an id from a 201 to the GET that takes it. Added to the JSON
/// because utoipa 5 serialises a link's `operationId` as `operation_id`.
pub(super) fn link_operations(document: &mut serde_json::Value) {
    /// Link name, target operation id, where the target's `id` comes from.
    type Target = (&'static str, &'static str, &'static str);
    let links: [(&str, &[Target]); 2] = [
        (
            "/v1/accounts",
            &[("GetAccount", "get_account", "$response.body#/id")],
        ),
        (
            "/v1/transfers",
            &[
                ("GetTransfer", "get_transfer", "$response.body#/id"),
                ("GetSourceAccount", "get_account", "$response.body#/from"),
                ("GetDestinationAccount", "get_account", "$response.body#/to"),
            ],
        ),
    ];
    for (path, targets) in links {
        let response = document
            .pointer_mut(&format!(
                "/paths/{}/post/responses/201",
                path.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_object_mut)
            .unwrap_or_else(|| panic!("POST {path} documents no 201 response to link from"));
        let links = targets
            .iter()
            .map(|(name, operation_id, id)| {
                (
                    (*name).to_owned(),
                    serde_json::json!({ "operationId": operation_id, "parameters": { "id": id } }),
                )
            })
            .collect();
        response.insert("links".to_owned(), serde_json::Value::Object(links));
    }
}

/// Declares the bearer scheme (an API key or a JWT in `Authorization`) and
/// puts it, with its 401 and 429 answers, on every `/v1` operation; the
/// health probes and this document need none. Done on the JSON, over every
/// operation, so that a new route cannot be left out.
pub(super) fn secure_operations(document: &mut serde_json::Value) {
    use serde_json::json;
    let problem = json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
    let header =
        |description: &str| json!({ "description": description, "schema": { "type": "string" } });
    document["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`lk_<prefix>_<secret>`, from `service api-key create`) or a JWT of the configured issuer, as `Authorization: Bearer <token>` (docs/security.md)."
        }
    });
    let paths = document["paths"]
        .as_object_mut()
        .expect("the document has paths");
    for (path, item) in paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|item| item.values_mut())
        {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            operation.insert("security".into(), json!([{ "bearer": [] }]));
            let responses = operation
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses are an object");
            responses.insert(
                "401".into(),
                json!({
                    "description": "Missing or invalid credentials (the same body either way)",
                    "headers": { "WWW-Authenticate": header("Bearer realm=\"ledger\" (with error=\"invalid_token\" when a credential was sent)") },
                    "content": problem.clone()
                }),
            );
            responses.insert(
                "429".into(),
                json!({
                    "description": "The principal's rate limit is exhausted; nothing was done and the Idempotency-Key stays usable",
                    "headers": {
                        "Retry-After": header("Seconds to wait"),
                        "RateLimit": header("IETF draft: remaining requests and seconds to refill"),
                        "RateLimit-Policy": header("IETF draft: the bucket's size and window")
                    },
                    "content": problem.clone()
                }),
            );
        }
    }
}
