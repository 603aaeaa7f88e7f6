//! Streamed request bodies over a real NATS server: every byte arrives in order, early answers
//! stop the sender, a stalled sender is noticed, and flow control keeps the sender within its window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sw_bus::rpc::serve;
use sw_bus::{BlobReader, CallMeta, Router, RpcCall, RpcEnvelope, RpcReply, StreamOptions};
use sw_http::ApiError;
use sw_testkit::TestEnv;
use tokio_util::sync::CancellationToken;

fn opts() -> StreamOptions {
    StreamOptions { final_timeout: Duration::from_secs(20), body_idle_timeout: Duration::from_secs(5) }
}

/// Deterministic pseudo-random bytes (xorshift), so a reordered or lost chunk changes the hash.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Splits `data` into uneven frames like an HTTP body would arrive.
fn frames(data: &[u8]) -> Vec<Result<Bytes, std::io::Error>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut size = 1usize;
    while i < data.len() {
        let n = size.min(data.len() - i);
        out.push(Ok(Bytes::copy_from_slice(&data[i..i + n])));
        i += n;
        size = (size * 7 + 13) % (300 * 1024) + 1;
    }
    out
}

async fn hashing_service(env: &TestEnv, seen: Arc<AtomicU64>) -> (sw_bus::Bus, CancellationToken) {
    let bus = env.bus().await;
    let router = Router::new("sink", "test sink")
        .route_streaming(
            "hash",
            Duration::from_secs(2),
            Duration::from_secs(30),
            move |call: RpcCall, mut body: BlobReader| {
                let seen = seen.clone();
                async move {
                    let mut h = Sha256::new();
                    let mut n = 0u64;
                    while let Some(chunk) = body.next_chunk().await.map_err(|e| e.to_api_error())? {
                        n += chunk.len() as u64;
                        seen.store(n, Ordering::SeqCst);
                        h.update(&chunk);
                    }
                    Ok(RpcReply::created(serde_json::json!({
                        "sha256": hex::encode(h.finalize()),
                        "size": n,
                        "meta": call.envelope.body,
                    })))
                }
            },
        )
        .route_streaming(
            "reject-after",
            Duration::from_secs(2),
            Duration::from_secs(30),
            |_call: RpcCall, mut body: BlobReader| async move {
                let mut n = 0usize;
                while let Some(chunk) = body.next_chunk().await.map_err(|e| e.to_api_error())? {
                    n += chunk.len();
                    if n >= 1024 * 1024 {
                        return Err(ApiError::new(413, "too_big", "1 MiB is enough"));
                    }
                }
                Ok(RpcReply::no_content())
            },
        );
    let stop = CancellationToken::new();
    tokio::spawn(serve(bus.clone(), router, stop.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    (bus, stop)
}

#[tokio::test]
async fn a_large_body_arrives_whole_and_in_order() {
    let env = TestEnv::new();
    let (bus, stop) = hashing_service(&env, Arc::new(AtomicU64::new(0))).await;
    let data = payload(9 * 1024 * 1024 + 12345);
    let envelope = RpcEnvelope::with_body(serde_json::json!({"contentType": "application/zip"}));
    let body = futures::stream::iter(frames(&data));
    let r = bus.call_streaming("sink", "hash", &CallMeta::default(), &envelope, body, opts()).await.unwrap();
    assert_eq!(r.status, 201);
    let b = r.body.unwrap();
    assert_eq!(b["sha256"], hex::encode(Sha256::digest(&data)));
    assert_eq!(b["size"], data.len() as u64);
    assert_eq!(b["meta"]["contentType"], "application/zip");

    // An empty body is a valid stream too.
    let empty = futures::stream::iter(Vec::<Result<Bytes, std::io::Error>>::new());
    let r = bus.call_streaming("sink", "hash", &CallMeta::default(), &envelope, empty, opts()).await.unwrap();
    assert_eq!(r.body.unwrap()["size"], 0);
    stop.cancel();
    env.cleanup().await;
}

#[tokio::test]
async fn an_early_answer_stops_the_sender() {
    let env = TestEnv::new();
    let (bus, stop) = hashing_service(&env, Arc::new(AtomicU64::new(0))).await;
    // 64 MiB that is never produced in full: the sender must stop at the service's answer.
    let produced = Arc::new(AtomicU64::new(0));
    let p = produced.clone();
    let body = Box::pin(futures::stream::unfold(0u32, move |i| {
        let p = p.clone();
        async move {
            (i < 1024).then(|| {
                p.fetch_add(64 * 1024, Ordering::SeqCst);
                (Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 64 * 1024])), i + 1)
            })
        }
    }));
    let e = bus
        .call_streaming("sink", "reject-after", &CallMeta::default(), &RpcEnvelope::default(), body, opts())
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (413, "too_big"));
    // 1 MiB read + at most a window of 8 × 512 KiB chunks in flight (+ one partly filled chunk).
    let sent = produced.load(Ordering::SeqCst);
    assert!(sent <= 6 * 1024 * 1024, "the sender went on to {sent} bytes");
    stop.cancel();
    env.cleanup().await;
}

#[tokio::test]
async fn an_early_answer_arrives_while_the_client_pauses() {
    let env = TestEnv::new();
    let (bus, stop) = hashing_service(&env, Arc::new(AtomicU64::new(0))).await;
    // 1.5 MiB, then the client goes quiet without ending the body.
    let start: Vec<Result<Bytes, std::io::Error>> =
        (0..3).map(|_| Ok(Bytes::from(vec![3u8; 512 * 1024]))).collect();
    let body = Box::pin(futures::stream::iter(start).chain(futures::stream::pending()));
    let patient =
        StreamOptions { final_timeout: Duration::from_secs(20), body_idle_timeout: Duration::from_secs(15) };
    let started = std::time::Instant::now();
    let e = bus
        .call_streaming("sink", "reject-after", &CallMeta::default(), &RpcEnvelope::default(), body, patient)
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (413, "too_big"));
    assert!(started.elapsed() < Duration::from_secs(10), "the answer waited for the idle timeout");
    stop.cancel();
    env.cleanup().await;
}

#[tokio::test]
async fn flow_control_keeps_the_sender_within_its_window() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    // A consumer that reads one chunk and then sits still: the sender must stall, not flood.
    let router = Router::new("slow", "slow sink").route_streaming(
        "take-one",
        Duration::from_secs(3),
        Duration::from_secs(30),
        |_call: RpcCall, mut body: BlobReader| async move {
            body.next_chunk().await.map_err(|e| e.to_api_error())?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(ApiError::new(422, "enough", "one chunk was enough"))
        },
    );
    let stop = CancellationToken::new();
    tokio::spawn(serve(bus.clone(), router, stop.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let produced = Arc::new(AtomicU64::new(0));
    let p = produced.clone();
    let body = Box::pin(futures::stream::unfold(0u32, move |i| {
        let p = p.clone();
        async move {
            (i < 4096).then(|| {
                p.fetch_add(64 * 1024, Ordering::SeqCst);
                (Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 64 * 1024])), i + 1)
            })
        }
    }));
    let e = bus
        .call_streaming("slow", "take-one", &CallMeta::default(), &RpcEnvelope::default(), body, opts())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "enough");
    let sent = produced.load(Ordering::SeqCst);
    assert!(sent <= 6 * 1024 * 1024, "the sender ran {sent} bytes ahead of a stalled consumer");
    stop.cancel();
    env.cleanup().await;
}

#[tokio::test]
async fn a_stalled_sender_times_out_on_both_sides() {
    let env = TestEnv::new();
    let seen = Arc::new(AtomicU64::new(0));
    let (bus, stop) = hashing_service(&env, seen.clone()).await;
    // Sends one frame, then never another and never ends.
    let body = Box::pin(
        futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 1000]))])
            .chain(futures::stream::pending()),
    );
    let short = StreamOptions {
        final_timeout: Duration::from_secs(5),
        body_idle_timeout: Duration::from_millis(500),
    };
    let e = bus
        .call_streaming("sink", "hash", &CallMeta::default(), &RpcEnvelope::default(), body, short)
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (408, "body_timeout"));
    stop.cancel();
    env.cleanup().await;
}

#[tokio::test]
async fn a_plain_call_to_a_streaming_op_sees_an_empty_body() {
    let env = TestEnv::new();
    let (bus, stop) = hashing_service(&env, Arc::new(AtomicU64::new(0))).await;
    let r = bus.call("sink", "hash", &CallMeta::default(), &RpcEnvelope::default(), None).await.unwrap();
    assert_eq!(r.body.unwrap()["size"], 0);
    stop.cancel();
    env.cleanup().await;
}

use futures::StreamExt as _;
