//! The commands stream against a real NATS JetStream: provisioned as a work queue, idempotently;
//! a command is taken by exactly one of an executor's replicas and removed once acked; a full
//! queue refuses new commands instead of dropping queued ones; the house consumer
//! ([`sw_bus::consumer::run`]), as an executor's replicas will run it, drains the queue once.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType};
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use sw_bus::consumer::{ConsumerConfig, Delivery, Handler, HandlerError, async_trait};
use sw_bus::{
    Bus, BusError, COMMAND_CONTENT_TYPE, COMMANDS_MAX_AGE, COMMANDS_MAX_BYTES, COMMANDS_MAX_MSGS, Provisioned,
};
use sw_contracts::executor::{ComponentTarget, K8sApplyCommand, RenderedComponent};
use sw_contracts::ids::AppId;
use sw_testkit::TestEnv;

/// The durable consumer an executor's replicas share.
const EXECUTOR: &str = "k8s-executor";

fn apply_command(command_id: &str, revision: u64) -> K8sApplyCommand {
    K8sApplyCommand {
        command_id: command_id.into(),
        target: ComponentTarget {
            cluster_id: "master".into(),
            namespace: "health".into(),
            app_id: AppId::parse("health").unwrap(),
            stage_id: Some("prod".into()),
            app_instance: "health-prod".into(),
            component_instance: "health".into(),
        },
        revision,
        health_deadline_secs: 300,
        component: RenderedComponent {
            component_type: "K8S_MICROSERVICE".into(),
            component_name: "health".into(),
            package_version: Some("1.0.0".into()),
            workload: serde_json::json!({"kind": "Deployment", "replicas": 1,
                "containers": [{"name": "server", "image": "registry.example/health:1.0.0"}]}),
            traits: vec![],
        },
    }
}

async fn stored(bus: &Bus) -> u64 {
    let mut s = bus.jetstream().get_stream(bus.names().commands_stream()).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// One pull of up to 10 messages, waiting at most `expires` for them.
async fn fetch(consumer: &PullConsumer, expires: Duration) -> Vec<async_nats::jetstream::Message> {
    let batch = consumer.fetch().max_messages(10).expires(expires).messages().await.unwrap();
    tokio::time::timeout(expires + Duration::from_secs(5), batch.map(|m| m.unwrap()).collect::<Vec<_>>())
        .await
        .expect("the pull ends when it expires")
}

#[tokio::test]
async fn commands_stream_is_a_work_queue_and_provisioning_is_idempotent() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    let mut stream =
        bus.jetstream().get_stream(format!("{}_COMMANDS", env.id.to_ascii_uppercase())).await.unwrap();
    let first = stream.info().await.unwrap().clone();
    let c = &first.config;
    assert_eq!(c.subjects, vec![format!("{}.cmd.>", env.id)]);
    assert_eq!(c.retention, RetentionPolicy::WorkQueue);
    assert_eq!(c.storage, StorageType::File);
    assert_eq!(c.discard, DiscardPolicy::New);
    assert_eq!(
        (c.max_messages, c.max_bytes, c.max_age),
        (COMMANDS_MAX_MSGS, COMMANDS_MAX_BYTES, COMMANDS_MAX_AGE)
    );
    assert_eq!(c.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.duplicate_window, Duration::from_secs(120));
    assert_eq!(c.num_replicas, env.cfg.nats.stream_replicas);

    // A queued command survives provisioning again: the streams are neither recreated nor changed.
    let cmd = apply_command("c-1", 1);
    assert!(!bus.publish_command("k8s.apply", &cmd.command_id, None, &cmd).await.unwrap());
    bus.ensure_streams().await.unwrap();
    assert_eq!(bus.ensure_stream(bus.commands_stream_config()).await.unwrap(), Provisioned::Unchanged);
    assert_eq!(bus.ensure_stream(bus.events_stream_config()).await.unwrap(), Provisioned::Unchanged);
    let again = stream.info().await.unwrap();
    assert_eq!(again.created, first.created);
    assert_eq!(again.config, first.config);
    assert_eq!(again.state.messages, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn a_command_goes_to_one_replica_and_is_removed_once_acked() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    let cmd = apply_command("c-42", 7);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    assert!(!bus.publish_command("k8s.apply", &cmd.command_id, Some(tp), &cmd).await.unwrap());
    assert!(
        bus.publish_command("k8s.apply", &cmd.command_id, Some(tp), &cmd).await.unwrap(),
        "the same command id again is a duplicate"
    );
    assert_eq!(stored(&bus).await, 1);

    let stream = bus.jetstream().get_stream(bus.names().commands_stream()).await.unwrap();
    stream
        .create_consumer(pull::Config {
            durable_name: Some(EXECUTOR.into()),
            filter_subject: bus.names().command_subject("k8s.>"),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    let replica_a: PullConsumer = stream.get_consumer(EXECUTOR).await.unwrap();
    let replica_b: PullConsumer = stream.get_consumer(EXECUTOR).await.unwrap();

    let got = fetch(&replica_a, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1, "one command, delivered once");
    let msg = &got[0];
    assert_eq!(msg.subject.as_str(), format!("{}.cmd.k8s.apply", env.id));
    assert_eq!(serde_json::from_slice::<K8sApplyCommand>(&msg.payload).unwrap(), cmd);
    let headers = msg.headers.as_ref().expect("headers");
    assert_eq!(headers.get(async_nats::header::NATS_MESSAGE_ID).unwrap().as_str(), "c-42");
    assert_eq!(headers.get("Content-Type").unwrap().as_str(), COMMAND_CONTENT_TYPE);
    assert_eq!(headers.get("traceparent").unwrap().as_str(), tp);

    // While replica A holds it, replica B gets nothing.
    assert!(fetch(&replica_b, Duration::from_millis(500)).await.is_empty());

    msg.double_ack().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stored(&bus).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the acked command must leave the stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fetch(&replica_b, Duration::from_millis(500)).await.is_empty());

    // A work queue has one taker per subject: a second consumer over the same subjects is refused.
    let intruder = stream
        .create_consumer(pull::Config {
            durable_name: Some("intruder".into()),
            filter_subject: bus.names().command_subject("k8s.apply"),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await;
    assert!(intruder.is_err(), "an overlapping consumer on a work queue must be refused");
    env.cleanup().await;
}

#[tokio::test]
async fn a_full_queue_refuses_new_commands_and_keeps_the_queued_ones() {
    let env = TestEnv::new();
    let bus = Bus::connect(&env.cfg.nats).await.unwrap();
    // The product's configuration with a tiny limit, so "full" is reachable in a test.
    let small = StreamConfig { max_messages: 2, ..bus.commands_stream_config() };
    assert_eq!(bus.ensure_stream(small).await.unwrap(), Provisioned::Created);
    for (i, id) in ["q-1", "q-2"].iter().enumerate() {
        let cmd = apply_command(id, i as u64 + 1);
        bus.publish_command("k8s.apply", id, None, &cmd).await.unwrap();
    }
    let cmd = apply_command("q-3", 3);
    let e = bus.publish_command("k8s.apply", "q-3", None, &cmd).await.unwrap_err();
    assert!(matches!(e, BusError::Publish { .. }), "{e}");

    let mut s = bus.jetstream().get_stream(bus.names().commands_stream()).await.unwrap();
    let info = s.info().await.unwrap();
    assert_eq!((info.state.messages, info.state.first_sequence), (2, 1), "the oldest command is kept");

    // Provisioning brings the limit back to the product's value; the refused command goes in.
    bus.ensure_streams().await.unwrap();
    assert_eq!(s.info().await.unwrap().config.max_messages, COMMANDS_MAX_MSGS);
    bus.publish_command("k8s.apply", "q-3", None, &cmd).await.unwrap();
    assert_eq!(stored(&bus).await, 3);
    env.cleanup().await;
}

#[tokio::test]
async fn a_commands_stream_with_another_retention_is_refused_not_reused() {
    let env = TestEnv::new();
    let bus = Bus::connect(&env.cfg.nats).await.unwrap();
    let limits = StreamConfig { retention: RetentionPolicy::Limits, ..bus.commands_stream_config() };
    bus.jetstream().create_stream(limits).await.unwrap();

    let e = bus.ensure_streams().await.unwrap_err();
    assert!(
        matches!(&e, BusError::Stream { stream, message }
            if *stream == bus.names().commands_stream() && message.contains("retention")),
        "{e}"
    );
    let mut s = bus.jetstream().get_stream(bus.names().commands_stream()).await.unwrap();
    assert_eq!(s.info().await.unwrap().config.retention, RetentionPolicy::Limits, "left for the operator");
    env.cleanup().await;
}

#[tokio::test]
async fn executor_replicas_on_the_house_consumer_apply_each_command_once() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    let db = env.db("cmdtest").await;
    sw_db::migrate::<Migrator>(&db, "cmdtest").await.unwrap();
    // No unique key: only the consumer's inbox and the work queue keep a command from applying twice.
    db.execute_unprepared(
        "CREATE TABLE applied (command_id VARCHAR(128) NOT NULL, revision BIGINT NOT NULL)",
    )
    .await
    .unwrap();

    let cfg = ConsumerConfig {
        filter_subjects: vec![bus.names().command_subject("k8s.>")],
        concurrency: 2,
        ..ConsumerConfig::new(bus.names().commands_stream(), EXECUTOR)
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(sw_bus::consumer::run(
                bus.clone(),
                db.clone(),
                cfg.clone(),
                Arc::new(RecordApply),
                stop.clone(),
            ))
        })
        .collect();
    for i in 0..20u64 {
        let cmd = apply_command(&format!("r-{i}"), i + 1);
        bus.publish_command("k8s.apply", &cmd.command_id, None, &cmd).await.unwrap();
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while count(&db, "SELECT COUNT(*) FROM applied").await < 20 || stored(&bus).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the replicas must drain the queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM applied").await, 20);
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT command_id) FROM applied").await, 20);
    stop.cancel();
    for r in replicas {
        tokio::time::timeout(Duration::from_secs(40), r).await.expect("replicas drain").unwrap().unwrap();
    }
    env.cleanup().await;
}

/// Records each apply command it is given, as the executor's handler will record its inventory.
struct RecordApply;

#[async_trait]
impl Handler for RecordApply {
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Delivery) -> Result<(), HandlerError> {
        let cmd: K8sApplyCommand = serde_json::from_slice(&msg.payload).map_err(HandlerError::permanent)?;
        txn.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            "INSERT INTO applied (command_id, revision) VALUES (?, ?)",
            [cmd.command_id.into(), cmd.revision.into()],
        ))
        .await?;
        Ok(())
    }
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one(Statement::from_string(DbBackend::MySql, sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

struct Migrator;

impl sea_orm_migration::MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
        vec![Box::new(sw_bus::outbox::Migration)]
    }
}
