//! Clusters: credentials are validated, sealed at rest bound to the cluster id, and never
//! returned or published; lifecycle, validation, the matrix, and start-up without a key.

use base64::Engine;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use sw_contracts::appmeta::{ClusterConnection, ClusterCredentials};
use sw_contracts::auth::Role;
use sw_crypto::{CredentialKey, decrypt_credentials};

use crate::support::{Json, TestApp, body, field_names, global, ids, req, team};

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.sa-token-very-secret";
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdummyCAcertificateBody\n-----END CERTIFICATE-----\n";
const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: kind\n  cluster:\n    server: https://127.0.0.1:6443\nusers:\n- name: admin\n  user:\n    token: kubeconfig-secret-token\ncontexts:\n- name: kind\n  context:\n    cluster: kind\n    user: admin\ncurrent-context: kind\n";
const SECRETS: [&str; 3] = ["sa-token-very-secret", "kubeconfig-secret-token", "MIIBdummyCAcertificateBody"];

fn cluster_req(id: &str) -> sw_bus::RpcEnvelope {
    req().param("clusterId", id)
}

fn assert_no_secret(what: &str, v: &Value) {
    let text = v.to_string();
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks a credential: {text}");
    }
    assert!(v.get("credentials").is_none(), "{what} has a credentials member");
}

async fn stored(t: &TestApp, id: &str) -> Vec<u8> {
    let db = t.env.db("appmeta").await;
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT credentials FROM clusters WHERE cluster_id = ?",
            [id.into()],
        ))
        .await
        .unwrap()
        .expect("the row");
    row.try_get("", "credentials").unwrap()
}

#[tokio::test]
async fn credentials_are_sealed_and_never_returned_or_published() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    let key = CredentialKey::new(t.env.cfg.require_appmeta_key().unwrap());

    let token_creds = json!({"kind": "token", "token": TOKEN, "caCert": CA});
    let created = t
        .expect(
            "clusters.create",
            &admin,
            body(json!({"clusterId": "prod", "apiUrl": "https://k8s.example.com:6443", "credentials": token_creds, "labels": {"env": "prod"}})),
            201,
        )
        .await;
    assert_eq!(created.headers.get("Location").map(String::as_str), Some("/v1/clusters/prod"));
    let out = created.body.unwrap();
    assert_no_secret("create reply", &out);
    assert_eq!(out["credentialKind"], "token");
    assert_eq!(out["apiUrl"], "https://k8s.example.com:6443");
    assert_eq!(out["name"], "prod");
    let ev = t.event("appmeta.cluster.created", "prod").await;
    assert_no_secret("created event", &ev);
    assert_eq!(ev, out);

    // At rest: sealed, bound to the cluster id, opened only with the key.
    let sealed = stored(&t, "prod").await;
    assert!(!SECRETS.iter().any(|s| sealed.windows(s.len()).any(|w| w == s.as_bytes())), "plaintext at rest");
    let opened = decrypt_credentials(&key, "prod", &sealed).unwrap();
    assert_eq!(
        opened,
        ClusterCredentials::Token {
            token: TOKEN.into(),
            ca_cert: Some(CA.into()),
            insecure_skip_tls_verify: false
        }
    );
    assert!(decrypt_credentials(&key, "staging", &sealed).is_err(), "sealed for another cluster id");
    assert!(decrypt_credentials(&CredentialKey::new([9; 32]), "prod", &sealed).is_err(), "wrong key");

    assert_eq!(t.ok("clusters.get", &admin, cluster_req("prod"), 200).await, out);
    let list = t.ok("clusters.list", &admin, req(), 200).await;
    assert_no_secret("list", &list);
    assert_eq!(list["items"][0], out);

    // Replacing credentials re-seals with a fresh nonce; the kind follows.
    let patched = t
        .ok(
            "clusters.update",
            &admin,
            cluster_req("prod")
                .json(json!({"credentials": {"kind": "kubeconfig", "kubeconfig": KUBECONFIG}})),
            200,
        )
        .await;
    assert_no_secret("update reply", &patched);
    assert_eq!(
        (patched["credentialKind"].clone(), patched["version"].clone()),
        (json!("kubeconfig"), json!(2))
    );
    assert_eq!(patched["apiUrl"], out["apiUrl"], "absent fields stay");
    let ev = t.event("appmeta.cluster.updated", "prod").await;
    assert_no_secret("updated event", &ev);
    assert_eq!(ev, patched);
    let resealed = stored(&t, "prod").await;
    assert_ne!(resealed, sealed);
    assert_eq!(
        decrypt_credentials(&key, "prod", &resealed).unwrap(),
        ClusterCredentials::Kubeconfig { kubeconfig: KUBECONFIG.into() }
    );

    // Changing other fields keeps the sealed credentials as they are.
    let renamed =
        t.ok("clusters.update", &admin, cluster_req("prod").json(json!({"name": "Production"})), 200).await;
    assert_eq!(renamed["credentialKind"], "kubeconfig");
    t.event("appmeta.cluster.updated", "prod").await;
    assert_eq!(stored(&t, "prod").await, resealed);

    // A kubeconfig alone is enough (the API URL comes from it).
    let kc = t
        .ok(
            "clusters.create",
            &admin,
            body(
                json!({"clusterId": "kind", "credentials": {"kind": "kubeconfig", "kubeconfig": KUBECONFIG}}),
            ),
            201,
        )
        .await;
    assert_no_secret("kubeconfig create reply", &kc);
    assert_eq!(kc["apiUrl"], Value::Null);
    assert_no_secret("kubeconfig created event", &t.event("appmeta.cluster.created", "kind").await);

    t.expect("clusters.delete", &admin, cluster_req("prod"), 204).await;
    assert_eq!(t.event("appmeta.cluster.deleted", "prod").await, json!({"clusterId": "prod"}));
    t.fail("clusters.get", Some(&admin), cluster_req("prod"), 404, "not_found").await;
    t.fail("clusters.delete", Some(&admin), cluster_req("prod"), 404, "not_found").await;
    assert_eq!(ids(&t.ok("clusters.list", &admin, req(), 200).await, "clusterId"), ["kind"]);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn invalid_clusters_list_every_bad_field() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    t.invalid(
        "clusters.create",
        &admin,
        body(json!({"clusterId": "c", "name": "", "apiUrl": "http://k8s.example.com", "credentials": {"kind": "token", "token": " ", "caCert": "not pem"}, "labels": {"a b": "c"}})),
        &["name", "apiUrl", "credentials.token", "credentials.caCert", "labels.a b"],
    )
    .await;
    t.invalid(
        "clusters.create",
        &admin,
        body(json!({"clusterId": "c", "credentials": {"kind": "token", "token": "t"}})),
        &["apiUrl"],
    )
    .await;
    t.invalid(
        "clusters.create",
        &admin,
        body(json!({"clusterId": "c", "credentials": {"kind": "kubeconfig", "kubeconfig": "clusters: []\nusers: []\n"}})),
        &["credentials.kubeconfig"],
    )
    .await;
    t.invalid(
        "clusters.create",
        &admin,
        body(json!({"clusterId": "c", "credentials": {"kind": "kubeconfig", "kubeconfig": "{{{ not yaml"}})),
        &["credentials.kubeconfig"],
    )
    .await;
    t.invalid(
        "clusters.create",
        &admin,
        body(json!({"clusterId": "c", "apiUrl": "https://h"})),
        &["credentials"],
    )
    .await;
    t.invalid("clusters.create", &admin, body(json!({"clusterId": "c", "apiUrl": "https://h", "credentials": {"kind": "token", "token": "t"}, "region": "x"})), &["region"])
        .await;
    let e = t
        .fail(
            "clusters.create",
            Some(&admin),
            body(json!({"clusterId": "c", "credentials": {"kind": "password", "password": "hunter2"}})),
            422,
            "validation_failed",
        )
        .await;
    assert!(!e.problem().detail.clone().unwrap_or_default().contains("hunter2"), "{e}");
    t.invalid("clusters.create", &admin, body(json!({"clusterId": "Prod", "apiUrl": "https://h", "credentials": {"kind": "token", "token": "t"}})), &["clusterId"])
        .await;
    // Loopback clusters may use plain http.
    t.expect("clusters.create", &admin, body(json!({"clusterId": "local", "apiUrl": "http://127.0.0.1:6443", "credentials": {"kind": "token", "token": "t"}})), 201)
        .await;
    t.event("appmeta.cluster.created", "local").await;
    t.expect(
        "clusters.create",
        &admin,
        body(json!({"clusterId": "kc", "credentials": {"kind": "kubeconfig", "kubeconfig": KUBECONFIG}})),
        201,
    )
    .await;
    t.event("appmeta.cluster.created", "kc").await;
    t.fail(
        "clusters.create",
        Some(&admin),
        body(json!({"clusterId": "kc", "credentials": {"kind": "kubeconfig", "kubeconfig": KUBECONFIG}})),
        409,
        "already_exists",
    )
    .await;
    // Token credentials on a cluster without an API URL need one.
    t.invalid(
        "clusters.update",
        &admin,
        cluster_req("kc").json(json!({"credentials": {"kind": "token", "token": "t"}})),
        &["apiUrl"],
    )
    .await;
    t.invalid(
        "clusters.update",
        &admin,
        cluster_req("local").json(json!({"apiUrl": "ftp://x", "description": "d".repeat(4097)})),
        &["description", "apiUrl"],
    )
    .await;
    t.invalid("clusters.get", &admin, cluster_req("no_underscores"), &["clusterId"]).await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn only_global_operators_manage_clusters() {
    let mut t = TestApp::spawn().await;
    let operator = t.token(vec![global(Role::Operator)]);
    let creds = json!({"kind": "token", "token": TOKEN});
    t.expect(
        "clusters.create",
        &operator,
        body(json!({"clusterId": "prod", "apiUrl": "https://h", "credentials": creds})),
        201,
    )
    .await;
    t.event("appmeta.cluster.created", "prod").await;
    t.expect("clusters.update", &operator, cluster_req("prod").json(json!({"description": "main"})), 200)
        .await;
    t.next_event().await;

    for role in [Role::Developer, Role::Viewer] {
        let tok = t.token(vec![global(role)]);
        assert_no_secret("list", &t.ok("clusters.list", &tok, req(), 200).await);
        assert_no_secret("get", &t.ok("clusters.get", &tok, cluster_req("prod"), 200).await);
        t.fail(
            "clusters.create",
            Some(&tok),
            body(json!({"clusterId": "x", "apiUrl": "https://h", "credentials": creds})),
            403,
            "forbidden",
        )
        .await;
        t.fail(
            "clusters.update",
            Some(&tok),
            cluster_req("prod").json(json!({"name": "x"})),
            403,
            "forbidden",
        )
        .await;
        t.fail("clusters.delete", Some(&tok), cluster_req("prod"), 403, "forbidden").await;
    }
    let team_admin = t.token(vec![team(Role::Admin, "pay")]);
    t.fail("clusters.get", Some(&team_admin), cluster_req("prod"), 403, "forbidden").await;
    t.fail("clusters.delete", Some(&team_admin), cluster_req("prod"), 403, "forbidden").await;
    t.fail("clusters.list", None, req(), 401, "missing_token").await;
    t.fail("clusters.get", Some("garbage"), cluster_req("prod"), 401, "invalid_token").await;

    t.expect("clusters.delete", &operator, cluster_req("prod"), 204).await;
    t.event("appmeta.cluster.deleted", "prod").await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn build_refuses_to_start_without_an_encryption_key() {
    let env = sw_testkit::TestEnv::new();
    let mut cfg = env.cfg.clone();
    cfg.appmeta.encryption_key = None;
    let keys = sw_testkit::TestKeys::new();
    let err = sw_appmeta::build(&cfg, env.bus().await, env.redis().await, keys.verifier(&env).await)
        .await
        .expect_err("a missing key must stop the service");
    assert!(matches!(err, sw_appmeta::BuildError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("appmeta.encryption_key"), "{err}");
    env.cleanup().await;
}

#[tokio::test]
async fn the_executor_gets_the_sealed_connection_without_a_user_token() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    let key = CredentialKey::new(t.env.cfg.require_appmeta_key().unwrap());
    let creds = json!({"kind": "token", "token": TOKEN, "caCert": CA});
    t.expect(
        "clusters.create",
        &admin,
        body(json!({"clusterId": "prod", "apiUrl": "https://k8s.example.com:6443", "credentials": creds})),
        201,
    )
    .await;
    t.event("appmeta.cluster.created", "prod").await;

    // No bearer token: the internal operation answers the executor, which has none.
    let conn = connection(&t, json!({"clusterId": "prod"})).await;
    let parsed: ClusterConnection = serde_json::from_value(conn.clone()).unwrap();
    assert_eq!(parsed.cluster_id.as_str(), "prod");
    assert_eq!(parsed.api_url.as_deref(), Some("https://k8s.example.com:6443"));
    assert_eq!((parsed.credential_kind.as_str(), parsed.version), ("token", 1));
    assert_no_secret("connection", &conn);
    let sealed = base64::engine::general_purpose::STANDARD.decode(&parsed.sealed_credentials).unwrap();
    assert_eq!(sealed, stored(&t, "prod").await, "the blob as stored, still sealed");
    assert_eq!(
        decrypt_credentials(&key, "prod", &sealed).unwrap(),
        ClusterCredentials::Token {
            token: TOKEN.into(),
            ca_cert: Some(CA.into()),
            insecure_skip_tls_verify: false
        }
    );

    // The version follows updates, so the executor knows when to rebuild its client.
    t.expect(
        "clusters.update",
        &admin,
        cluster_req("prod").json(json!({"credentials": {"kind": "kubeconfig", "kubeconfig": KUBECONFIG}})),
        200,
    )
    .await;
    t.event("appmeta.cluster.updated", "prod").await;
    let conn: ClusterConnection =
        serde_json::from_value(connection(&t, json!({"clusterId": "prod"})).await).unwrap();
    assert_eq!((conn.credential_kind.as_str(), conn.version), ("kubeconfig", 2));
    let sealed = base64::engine::general_purpose::STANDARD.decode(&conn.sealed_credentials).unwrap();
    assert_eq!(
        decrypt_credentials(&key, "prod", &sealed).unwrap(),
        ClusterCredentials::Kubeconfig { kubeconfig: KUBECONFIG.into() }
    );

    t.fail("clusters.connection", None, body(json!({"clusterId": "nope"})), 404, "not_found").await;
    for (bad, field) in
        [(json!({"clusterId": "Bad_Id"}), "clusterId"), (json!({"clusterId": "prod", "x": 1}), "x")]
    {
        let e = t.fail("clusters.connection", None, body(bad), 422, "validation_failed").await;
        assert_eq!(field_names(&e), [field], "{e}");
    }
    t.no_event().await;
    t.stop().await;
}

/// `clusters.connection` called as the executor calls it (no token); the 200 body.
async fn connection(t: &TestApp, body_json: Value) -> Value {
    let reply = t.call("clusters.connection", None, body(body_json)).await.expect("clusters.connection");
    assert_eq!(reply.status, 200);
    reply.body.expect("a body")
}
