//! The bus against a real NATS JetStream and MariaDB: request/reply, event publishing with
//! deduplication, and the outbox surviving a crash between commit and publish.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use sw_bus::outbox::Outbox;
use sw_bus::rpc::serve;
use sw_bus::{CallMeta, CloudEvent, Router, RpcEnvelope, RpcReply};
use sw_http::ApiError;
use sw_testkit::TestEnv;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn request_reply_round_trip_and_errors() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    let router = Router::new("echo", "test echo")
        .route("say", |call: sw_bus::RpcCall| async move {
            let who = call.envelope.params.get("who").cloned().unwrap_or_default();
            Ok(RpcReply::created(serde_json::json!({"hello": who, "auth": call.meta.authorization})))
        })
        .route("fail", |_| async move { Err::<RpcReply, _>(ApiError::conflict("already_exists", "nope")) })
        .route("slow", |_| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(RpcReply::no_content())
        });
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(bus.clone(), router, stop.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let meta = CallMeta { authorization: Some("Bearer x".into()), ..Default::default() };
    let r = bus.call("echo", "say", &meta, &RpcEnvelope::default().param("who", "sre"), None).await.unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.body.unwrap(), serde_json::json!({"hello": "sre", "auth": "Bearer x"}));

    let e = bus.call("echo", "fail", &meta, &RpcEnvelope::default(), None).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (409, "already_exists"));

    let e = bus
        .call("echo", "slow", &meta, &RpcEnvelope::default(), Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (503, "upstream_timeout"));

    let e = bus.call("nobody", "home", &meta, &RpcEnvelope::default(), None).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (503, "service_unavailable"));

    stop.cancel();
    server.await.unwrap().unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn duplicate_event_ids_are_stored_once() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    let mut tap = env.events(&bus, &bus.names().events_wildcard()).await;
    let ev = CloudEvent::new(
        "appmeta",
        "appmeta.app.deleted",
        Some("a".into()),
        serde_json::json!({"appId": "a"}),
    );
    assert!(!bus.publish_event(&ev).await.unwrap());
    assert!(bus.publish_event(&ev).await.unwrap(), "second publish must be reported as duplicate");
    let (got, headers) = tap.next(Duration::from_secs(5)).await.expect("one event");
    assert_eq!(got, ev);
    assert_eq!(headers.get(async_nats::header::NATS_MESSAGE_ID).unwrap().as_str(), ev.id);
    assert!(tap.next(Duration::from_millis(500)).await.is_none(), "the duplicate must not be delivered");
    env.cleanup().await;
}

#[tokio::test]
async fn outbox_survives_a_crash_between_commit_and_publish() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    let db = env.db("outboxtest").await;
    sw_db::migrate::<Migrator>(&db, "outboxtest").await.unwrap();
    db.execute_unprepared("CREATE TABLE thing (id INT PRIMARY KEY)").await.unwrap();
    let outbox = Outbox::new(bus.names().clone());

    // The state change and its event commit together; no relay runs (the process "crashed").
    let ev = CloudEvent::new("appmeta", "appmeta.app.created", Some("x".into()), serde_json::json!({"n": 1}));
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("INSERT INTO thing VALUES (1)").await.unwrap();
    outbox.enqueue(&txn, &ev).await.unwrap();
    txn.commit().await.unwrap();

    // A rolled-back change leaves no event behind.
    let ghost =
        CloudEvent::new("appmeta", "appmeta.app.created", Some("ghost".into()), serde_json::json!({}));
    let txn = db.begin().await.unwrap();
    outbox.enqueue(&txn, &ghost).await.unwrap();
    txn.rollback().await.unwrap();

    let relay = outbox.relay(db.clone(), bus.clone());
    assert_eq!(relay.pending().await.unwrap(), 1);

    // "Restart": the relay publishes the committed row.
    let mut tap = env.events(&bus, &bus.names().event_subject("appmeta.app.created")).await;
    assert_eq!(relay.publish_pending().await.unwrap(), 1);
    assert_eq!(relay.pending().await.unwrap(), 0);

    // A crash after publish but before the delete: the row comes back and is published again.
    let txn = db.begin().await.unwrap();
    outbox.enqueue(&txn, &ev).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(relay.publish_pending().await.unwrap(), 1);

    let (got, _) = tap.next(Duration::from_secs(5)).await.expect("the event");
    assert_eq!(got.id, ev.id);
    assert!(
        tap.next(Duration::from_millis(500)).await.is_none(),
        "the republished copy is dropped by JetStream"
    );

    // The relay loop drains on wake and on shutdown.
    let stop = CancellationToken::new();
    let run = tokio::spawn(outbox.relay(db.clone(), bus.clone()).run(stop.clone()));
    let ev2 =
        CloudEvent::new("appmeta", "appmeta.app.created", Some("y".into()), serde_json::json!({"n": 2}));
    let txn = db.begin().await.unwrap();
    outbox.enqueue(&txn, &ev2).await.unwrap();
    txn.commit().await.unwrap();
    outbox.wake();
    let (got, _) = tap.next(Duration::from_secs(5)).await.expect("the woken event");
    assert_eq!(got.id, ev2.id);
    stop.cancel();
    run.await.unwrap();
    env.cleanup().await;
}

struct Migrator;

impl sea_orm_migration::MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
        vec![Box::new(sw_bus::outbox::Migration)]
    }
}
