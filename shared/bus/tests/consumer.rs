//! The idempotent consumer against a real NATS JetStream and MariaDB: effects commit with the inbox
//! row and are acked, redeliveries and republished copies apply once, retries back off, poison and
//! permanently failing messages are dead-lettered with an event, a database outage never acks or
//! dead-letters, and shutdown finishes the message in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer;
use async_nats::jetstream::stream::Config as StreamConfig;
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement};
use sea_orm_migration::prelude::*;
use sw_bus::Bus;
use sw_bus::consumer::{
    ConsumerConfig, Delivery, HDR_DLQ_CONSUMER, HDR_DLQ_DELIVERIES, HDR_DLQ_REASON, HDR_DLQ_SUBJECT, Handler,
    HandlerError, Outcome, apply, async_trait, run,
};
use sw_contracts::bus::DeadLettered;
use sw_testkit::TestEnv;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);

type Running = JoinHandle<Result<(), sw_bus::BusError>>;

#[tokio::test]
async fn effects_commit_with_the_inbox_row_and_every_message_is_acked() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    for i in 0..5 {
        fx.publish("orders.created", Some(&format!("order-{i}")), &format!("body-{i}")).await;
    }
    let handler = Recorder::new(Mode::Succeed);
    let (stop, task) = fx.start(fx.config("orders"), handler.clone()).await;
    fx.eventually("five effects", || async { fx.effects_total().await == 5 }).await;
    fx.eventually("all acked", || async {
        let i = fx.info("orders").await;
        i.num_ack_pending == 0 && i.num_pending == 0
    })
    .await;
    // One at a time means stream order.
    assert_eq!(fx.bodies().await, (0..5).map(|i| format!("body-{i}")).collect::<Vec<_>>());
    assert_eq!(fx.inbox("orders").await, 5);
    assert_eq!(handler.attempts(), 5);
    stop.cancel();
    task.await.unwrap().unwrap();

    // A restart with another ack_wait updates the consumer; with concurrency it still applies each once.
    let cfg = ConsumerConfig { concurrency: 4, ack_wait: Duration::from_secs(7), ..fx.config("orders") };
    let (stop, task) = fx.start(cfg, handler.clone()).await;
    for i in 5..13 {
        fx.publish("orders.created", Some(&format!("order-{i}")), &format!("body-{i}")).await;
    }
    fx.eventually("thirteen effects", || async { fx.effects_total().await == 13 }).await;
    fx.eventually("all acked", || async {
        let i = fx.info("orders").await;
        i.num_ack_pending == 0 && i.num_pending == 0
    })
    .await;
    let info = fx.info("orders").await;
    assert_eq!(info.config.ack_wait, Duration::from_secs(7));
    assert_eq!(info.config.max_deliver, -1, "the client enforces max_deliver");
    assert_eq!(fx.inbox("orders").await, 13);
    stop.cancel();
    task.await.unwrap().unwrap();
    fx.cleanup().await;
}

#[tokio::test]
async fn a_delivery_whose_ack_was_lost_applies_once() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    let handler = Recorder::new(Mode::Succeed);
    let d = fx.delivery("order-7", "body-7");
    // The commit succeeded but the ack never reached the server, so the message comes again.
    assert!(matches!(apply(&fx.db, "orders", handler.as_ref(), &d, WAIT).await, Outcome::Committed));
    let again = Delivery { delivered: 2, ..d.clone() };
    assert!(matches!(apply(&fx.db, "orders", handler.as_ref(), &again, WAIT).await, Outcome::Duplicate));
    assert_eq!(handler.attempts(), 1, "the handler does not run for a duplicate");
    assert_eq!(fx.effects("order-7").await, 1);
    // Another consumer of the same message applies its own effect once.
    assert!(matches!(apply(&fx.db, "audit", handler.as_ref(), &d, WAIT).await, Outcome::Committed));
    assert_eq!(fx.effects("order-7").await, 2);
    fx.cleanup().await;
}

/// A handler that writes the inbox row with its own writes: the first delivery commits both, a
/// copy fails at the inbox row and is told a duplicate (its effect rolled back), and a failure
/// leaves neither row.
#[tokio::test]
async fn a_handler_writing_its_inbox_row_applies_a_message_once() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    let handler = Recorder::writing_inbox(Mode::Succeed);
    let d = fx.delivery("order-9", "body-9");
    assert!(matches!(apply(&fx.db, "orders", handler.as_ref(), &d, WAIT).await, Outcome::Committed));
    assert_eq!((fx.effects("order-9").await, fx.inbox("orders").await), (1, 1));
    // A copy (republished after the duplicate window: a first delivery again) and a redelivery.
    for copy in [d.clone(), Delivery { delivered: 2, ..d.clone() }] {
        let outcome = apply(&fx.db, "orders", handler.as_ref(), &copy, WAIT).await;
        assert!(matches!(outcome, Outcome::Duplicate), "{outcome:?}");
    }
    assert_eq!(handler.attempts(), 3, "the handler ran for the copies: the inbox row is its last write");
    assert_eq!((fx.effects("order-9").await, fx.inbox("orders").await), (1, 1), "the copies rolled back");
    // Another consumer of the same message applies its own effect once.
    assert!(matches!(apply(&fx.db, "audit", handler.as_ref(), &d, WAIT).await, Outcome::Committed));
    assert_eq!(fx.effects("order-9").await, 2);

    let failing = Recorder::writing_inbox(Mode::AlwaysRetry);
    let d = fx.delivery("order-10", "body-10");
    let outcome = apply(&fx.db, "orders", failing.as_ref(), &d, WAIT).await;
    assert!(matches!(outcome, Outcome::Failed(HandlerError::Retry(_))), "{outcome:?}");
    assert_eq!(fx.effects("order-10").await, 0);
    assert_eq!(fx.inbox("orders").await, 1, "no inbox row for the failed message");
    fx.cleanup().await;
}

#[tokio::test]
async fn a_message_without_effect_is_acked_without_a_transaction() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    fx.publish("orders.created", Some("order-1"), "skip: nothing to do").await;
    fx.publish("orders.created", Some("order-2"), "body-2").await;
    let handler = Recorder::new(Mode::Succeed);
    let (stop, task) = fx.start(fx.config("orders"), handler.clone()).await;
    fx.all_acked("orders", 2).await;
    assert_eq!(handler.attempts(), 1, "the handler runs only for the message with an effect");
    assert_eq!(fx.bodies().await, vec!["body-2".to_owned()]);
    assert_eq!(fx.inbox("orders").await, 1, "no inbox row for the message without effect");
    // The same path for a delivery applied directly.
    let d = fx.delivery("order-3", "skip again");
    assert!(matches!(apply(&fx.db, "orders", handler.as_ref(), &d, WAIT).await, Outcome::Unwanted));
    assert_eq!(handler.attempts(), 1);
    assert_eq!(fx.inbox("orders").await, 1);
    stop.cancel();
    task.await.unwrap().unwrap();
    fx.cleanup().await;
}

#[tokio::test]
async fn a_copy_republished_after_the_duplicate_window_applies_once() {
    // A tiny duplicate window lets the same Nats-Msg-Id be stored twice, as after a long outage.
    let fx = Fixture::new(ms(100)).await;
    fx.publish("orders.created", Some("order-1"), "first").await;
    tokio::time::sleep(ms(400)).await;
    fx.publish("orders.created", Some("order-1"), "second copy").await;
    fx.publish("orders.created", None, "no id").await;
    let handler = Recorder::new(Mode::Succeed);
    let (stop, task) = fx.start(fx.config("orders"), handler.clone()).await;
    fx.all_acked("orders", 3).await;
    assert_eq!(fx.bodies().await, vec!["first".to_owned(), "no id".to_owned()]);
    assert_eq!(fx.effects("order-1").await, 1);
    assert_eq!(fx.effects("seq:3").await, 1, "without a header the stream sequence is the id");
    assert_eq!(handler.attempts(), 2);
    stop.cancel();
    task.await.unwrap().unwrap();
    fx.cleanup().await;
}

#[tokio::test]
async fn retryable_failures_are_redelivered_until_the_effect_commits() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    let mut dlq = fx.bus.client().subscribe(format!("{}.dlq.>", fx.env.id)).await.unwrap();
    fx.publish("orders.created", Some("flaky"), "body").await;
    let handler = Recorder::new(Mode::FailFirst(2));
    let (stop, task) = fx.start(fx.config("orders"), handler.clone()).await;
    fx.eventually("the effect", || async { fx.effects("flaky").await == 1 }).await;
    fx.eventually("acked", || async { fx.info("orders").await.num_ack_pending == 0 }).await;
    assert_eq!(handler.attempts(), 3);
    assert_eq!(fx.delivered_of("flaky").await, 3, "committed on the third delivery");
    assert_eq!(fx.effects_total().await, 1, "the failed attempts rolled back their effect");
    assert!(tokio::time::timeout(ms(300), dlq.next()).await.is_err(), "nothing dead-lettered");
    stop.cancel();
    task.await.unwrap().unwrap();
    fx.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_after_max_deliver() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    let mut dlq = fx.bus.client().subscribe(format!("{}.dlq.>", fx.env.id)).await.unwrap();
    let mut events = fx.env.events(&fx.bus, &fx.bus.names().event_subject("bus.message.dead-lettered")).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, "poison-1");
    headers.insert("X-Tenant", "acme");
    fx.publish_with(&fx.subject("orders.created"), headers, "poison").await;

    let handler = Recorder::new(Mode::AlwaysRetry);
    let cfg = ConsumerConfig { max_deliver: 3, ..fx.config("orders") };
    let (stop, task) = fx.start(cfg, handler.clone()).await;

    let m = tokio::time::timeout(WAIT, dlq.next()).await.expect("a dead letter").unwrap();
    assert_eq!(m.subject.as_str(), format!("{}.dlq.{}", fx.env.id, fx.stream));
    assert_eq!(&m.payload[..], b"poison");
    let h = m.headers.clone().unwrap();
    assert_eq!(h.get("X-Tenant").unwrap().as_str(), "acme", "original headers travel along");
    assert_eq!(h.get(async_nats::header::NATS_MESSAGE_ID).unwrap().as_str(), "poison-1");
    assert_eq!(h.get(HDR_DLQ_CONSUMER).unwrap().as_str(), "orders");
    assert_eq!(h.get(HDR_DLQ_SUBJECT).unwrap().as_str(), fx.subject("orders.created"));
    assert_eq!(h.get(HDR_DLQ_DELIVERIES).unwrap().as_str(), "3");
    let reason = h.get(HDR_DLQ_REASON).unwrap().as_str().to_owned();
    assert!(reason.contains("gave up after 3 deliveries") && reason.contains("always fails"), "{reason}");

    let (ev, _) = events.next(WAIT).await.expect("the dead-lettered event");
    assert_eq!(ev.type_, "sreworks.bus.message.dead-lettered");
    assert_eq!(ev.subject.as_deref(), Some("poison-1"));
    let data: DeadLettered = serde_json::from_value(ev.data).unwrap();
    assert_eq!(
        data,
        DeadLettered {
            stream: fx.stream.clone(),
            consumer: "orders".into(),
            subject: fx.subject("orders.created"),
            msg_id: "poison-1".into(),
            deliveries: 3,
            reason,
        }
    );

    fx.eventually("terminated", || async {
        let i = fx.info("orders").await;
        i.num_ack_pending == 0 && i.num_pending == 0
    })
    .await;
    assert_eq!(handler.attempts(), 3);
    assert_eq!(fx.effects_total().await, 0);
    assert_eq!(fx.inbox("orders").await, 0, "a dead letter can be replayed later");
    assert!(tokio::time::timeout(ms(500), dlq.next()).await.is_err(), "dead-lettered once");
    stop.cancel();
    task.await.unwrap().unwrap();
    fx.cleanup().await;
}

#[tokio::test]
async fn a_permanent_error_dead_letters_at_once() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    let mut dlq = fx.bus.client().subscribe(format!("{}.dlq.>", fx.env.id)).await.unwrap();
    let mut events = fx.env.events(&fx.bus, &fx.bus.names().event_subject("bus.message.dead-lettered")).await;
    fx.publish("orders.created", None, "not json").await;
    let handler = Recorder::new(Mode::Permanent);
    let (stop, task) = fx.start(fx.config("orders"), handler.clone()).await;

    let m = tokio::time::timeout(WAIT, dlq.next()).await.expect("a dead letter").unwrap();
    let h = m.headers.clone().unwrap();
    assert_eq!(h.get(HDR_DLQ_REASON).unwrap().as_str(), "permanent error: cannot parse");
    assert_eq!(h.get(HDR_DLQ_DELIVERIES).unwrap().as_str(), "1");
    let (ev, _) = events.next(WAIT).await.expect("the dead-lettered event");
    let data: DeadLettered = serde_json::from_value(ev.data).unwrap();
    assert_eq!((data.deliveries, data.msg_id.as_str()), (1, "seq:1"));
    fx.eventually("terminated", || async { fx.info("orders").await.num_ack_pending == 0 }).await;
    assert_eq!(handler.attempts(), 1);
    assert_eq!(fx.effects_total().await, 0);
    stop.cancel();
    task.await.unwrap().unwrap();
    fx.cleanup().await;
}

#[tokio::test]
async fn a_database_outage_never_acks_or_dead_letters() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    let mut dlq = fx.bus.client().subscribe(format!("{}.dlq.>", fx.env.id)).await.unwrap();
    fx.publish("orders.created", Some("during-outage"), "body").await;
    // A pool that is closed behaves like a database that cannot be reached.
    let down = fx.env.db("consumertest").await;
    down.clone().close().await.unwrap();
    let handler = Recorder::new(Mode::Succeed);
    let cfg = ConsumerConfig { max_deliver: 2, backoff: vec![ms(50)], ..fx.config("orders") };
    let (stop, task) = fx.start_on(down, cfg.clone(), handler.clone()).await;
    fx.eventually("redelivered past max_deliver", || async {
        fx.info("orders").await.delivered.consumer_sequence > 3
    })
    .await;
    assert!(tokio::time::timeout(ms(300), dlq.next()).await.is_err(), "an outage is not the message's fault");
    assert_eq!(handler.attempts(), 0);
    stop.cancel();
    task.await.unwrap().unwrap();

    // The database is back: the message is applied once.
    let (stop, task) = fx.start(cfg, handler.clone()).await;
    fx.eventually("the effect", || async { fx.effects("during-outage").await == 1 }).await;
    fx.eventually("acked", || async { fx.info("orders").await.num_ack_pending == 0 }).await;
    assert_eq!(handler.attempts(), 1);
    stop.cancel();
    task.await.unwrap().unwrap();
    fx.cleanup().await;
}

#[tokio::test]
async fn shutdown_finishes_the_message_in_flight() {
    let fx = Fixture::new(Duration::from_secs(120)).await;
    fx.publish("orders.created", Some("slow-1"), "body").await;
    let handler = Recorder::new(Mode::Slow(ms(1500)));
    let (stop, task) = fx.start(fx.config("orders"), handler.clone()).await;
    tokio::time::timeout(WAIT, handler.started.notified()).await.expect("the handler started");
    stop.cancel();
    fx.publish("orders.created", Some("after-stop"), "body").await;
    tokio::time::timeout(WAIT, task).await.expect("drained in time").unwrap().unwrap();
    assert_eq!(fx.effects("slow-1").await, 1, "the in-flight effect committed");
    let info = fx.info("orders").await;
    assert_eq!(info.num_ack_pending, 0, "and was acked before run returned");
    assert_eq!(info.num_pending, 1, "nothing is pulled after the signal");
    assert_eq!(fx.effects("after-stop").await, 0);
    fx.cleanup().await;
}

// ---------------------------------------------------------------- fixture

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One test's bus, work stream and migrated database.
struct Fixture {
    env: TestEnv,
    bus: Bus,
    db: DatabaseConnection,
    stream: String,
}

impl Fixture {
    async fn new(duplicate_window: Duration) -> Self {
        let env = TestEnv::new();
        let bus = env.bus().await;
        let stream = format!("{}_WORK", env.id.to_ascii_uppercase());
        bus.ensure_stream(StreamConfig {
            name: stream.clone(),
            subjects: vec![format!("{}.work.>", env.id)],
            max_age: Duration::from_secs(3600),
            duplicate_window,
            ..Default::default()
        })
        .await
        .unwrap();
        let db = env.db("consumertest").await;
        sw_db::migrate::<Migrator>(&db, "consumertest").await.unwrap();
        Self { env, bus, db, stream }
    }

    fn subject(&self, rest: &str) -> String {
        format!("{}.work.{rest}", self.env.id)
    }

    /// Fast retries so the tests run in well under a second per retry.
    fn config(&self, durable: &str) -> ConsumerConfig {
        ConsumerConfig {
            filter_subjects: vec![format!("{}.work.orders.>", self.env.id)],
            ack_wait: Duration::from_secs(5),
            backoff: vec![ms(100)],
            ..ConsumerConfig::new(&self.stream, durable)
        }
    }

    async fn start(&self, cfg: ConsumerConfig, handler: Arc<Recorder>) -> (CancellationToken, Running) {
        self.start_on(self.db.clone(), cfg, handler).await
    }

    /// Runs a consumer on `db` and waits until the server knows it.
    async fn start_on(
        &self,
        db: DatabaseConnection,
        cfg: ConsumerConfig,
        handler: Arc<Recorder>,
    ) -> (CancellationToken, Running) {
        let stop = CancellationToken::new();
        let durable = cfg.durable.clone();
        let task = tokio::spawn(run(self.bus.clone(), db, cfg, handler, stop.clone()));
        let stream = self.bus.jetstream().get_stream(&self.stream).await.unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while stream.consumer_info(&durable).await.is_err() {
            assert!(!task.is_finished(), "the consumer stopped: {:?}", task.await);
            assert!(tokio::time::Instant::now() < deadline, "the consumer was not created");
            tokio::time::sleep(ms(20)).await;
        }
        (stop, task)
    }

    async fn publish(&self, rest: &str, msg_id: Option<&str>, body: &str) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = msg_id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        }
        self.publish_with(&self.subject(rest), headers, body).await;
    }

    async fn publish_with(&self, subject: &str, headers: async_nats::HeaderMap, body: &str) {
        let ack = self
            .bus
            .jetstream()
            .publish_with_headers(subject.to_owned(), headers, body.to_owned().into())
            .await
            .unwrap();
        let ack = ack.await.unwrap();
        assert!(!ack.duplicate, "test messages must be stored");
    }

    async fn info(&self, durable: &str) -> consumer::Info {
        let stream = self.bus.jetstream().get_stream(&self.stream).await.unwrap();
        stream.consumer_info(durable).await.unwrap()
    }

    async fn count(&self, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
        let row = self
            .db
            .query_one(Statement::from_sql_and_values(DbBackend::MySql, sql, values))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    async fn effects_total(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM effect", vec![]).await
    }

    async fn effects(&self, msg_id: &str) -> i64 {
        self.count("SELECT COUNT(*) FROM effect WHERE msg_id = ?", vec![msg_id.into()]).await
    }

    /// A first delivery of `body` as `msg_id` on `orders.created`, for [`apply`] called directly.
    fn delivery(&self, msg_id: &str, body: &str) -> Delivery {
        Delivery {
            subject: self.subject("orders.created"),
            msg_id: msg_id.into(),
            payload: body.to_owned().into(),
            headers: Default::default(),
            delivered: 1,
        }
    }

    async fn inbox(&self, consumer: &str) -> i64 {
        self.count("SELECT COUNT(*) FROM sw_inbox WHERE consumer = ?", vec![consumer.into()]).await
    }

    async fn delivered_of(&self, msg_id: &str) -> i64 {
        self.count("SELECT delivered FROM effect WHERE msg_id = ?", vec![msg_id.into()]).await
    }

    /// Effect bodies in commit order.
    async fn bodies(&self) -> Vec<String> {
        let rows = self
            .db
            .query_all(Statement::from_string(DbBackend::MySql, "SELECT body FROM effect ORDER BY id"))
            .await
            .unwrap();
        rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
    }

    /// Polls `check` until it holds, failing the test after [`WAIT`].
    async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(ms(50)).await;
        }
    }

    /// Waits until `consumer` has acked every message up to stream sequence `last`, with nothing
    /// pending.
    async fn all_acked(&self, consumer: &str, last: u64) {
        self.eventually(&format!("{consumer} acked up to {last}"), || async {
            let i = self.info(consumer).await;
            i.num_ack_pending == 0 && i.num_pending == 0 && i.ack_floor.stream_sequence == last
        })
        .await;
    }

    async fn cleanup(self) {
        let _ = self.bus.jetstream().delete_stream(&self.stream).await;
        self.env.cleanup().await;
    }
}

/// How the test handler behaves.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Succeed,
    /// Retryable failure on the first n attempts.
    FailFirst(i64),
    AlwaysRetry,
    Permanent,
    /// Succeeds after a pause.
    Slow(Duration),
}

/// Writes one `effect` row per attempt (so a rollback is visible), then answers as `mode` says.
struct Recorder {
    mode: Mode,
    attempts: AtomicI64,
    started: Notify,
    /// Writes the inbox row itself, in one batch after its effect ([`Handler::writes_inbox`]).
    own_inbox: bool,
}

impl Recorder {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self { mode, attempts: AtomicI64::new(0), started: Notify::new(), own_inbox: false })
    }
    fn writing_inbox(mode: Mode) -> Arc<Self> {
        Arc::new(Self { mode, attempts: AtomicI64::new(0), started: Notify::new(), own_inbox: true })
    }
    fn attempts(&self) -> i64 {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Handler for Recorder {
    /// A message whose body starts with `skip` has no effect.
    fn wants(&self, msg: &Delivery) -> bool {
        !msg.payload.starts_with(b"skip")
    }

    fn writes_inbox(&self, _msg: &Delivery) -> bool {
        self.own_inbox
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Delivery) -> Result<(), HandlerError> {
        self.handle_writing(txn, msg, None).await
    }

    async fn handle_with_inbox(
        &self,
        txn: &DatabaseTransaction,
        msg: &Delivery,
        inbox: Statement,
    ) -> Result<(), HandlerError> {
        self.handle_writing(txn, msg, Some(inbox)).await
    }
}

impl Recorder {
    /// The effect row, and `inbox` after it in the same round trip.
    async fn handle_writing(
        &self,
        txn: &DatabaseTransaction,
        msg: &Delivery,
        inbox: Option<Statement>,
    ) -> Result<(), HandlerError> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let mut writes = sw_db::Batch::new();
        writes.push(&Statement::from_sql_and_values(
            DbBackend::MySql,
            "INSERT INTO effect (msg_id, body, delivered) VALUES (?, ?, ?)",
            [
                msg.msg_id.clone().into(),
                String::from_utf8_lossy(&msg.payload).into_owned().into(),
                msg.delivered.into(),
            ],
        ))?;
        if let Some(inbox) = inbox {
            writes.push(&inbox)?;
        }
        writes.execute(txn).await?;
        self.started.notify_one();
        match self.mode {
            Mode::FailFirst(k) if n <= k => Err(HandlerError::retry(format!("attempt {n} fails"))),
            Mode::AlwaysRetry => Err(HandlerError::retry("always fails")),
            Mode::Permanent => Err(HandlerError::permanent("cannot parse")),
            Mode::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Mode::Succeed | Mode::FailFirst(_) => Ok(()),
        }
    }
}

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(sw_bus::outbox::Migration), Box::new(CreateEffect)]
    }
}

/// The test's effect table: deliberately without a unique key, so only the inbox prevents doubles.
struct CreateEffect;

impl MigrationName for CreateEffect {
    fn name(&self) -> &str {
        "m0001_effect"
    }
}

#[async_trait]
impl MigrationTrait for CreateEffect {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE effect (
                    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    msg_id VARCHAR(128) NOT NULL,
                    body TEXT NOT NULL,
                    delivered INT NOT NULL
                ) ENGINE=InnoDB",
            )
            .await
            .map(|_| ())
    }
}
