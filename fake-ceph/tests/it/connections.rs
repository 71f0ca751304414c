//! The serving loop both fake services use (`fake_ceph::service::serve`): silent, idle
//! and half-sent connections are closed after the timeouts, and a well-behaved client is
//! served while such connections fill the connection limit (issue 14, item 3: none of
//! 3,000 silent connections closed, and 1,100 of them locked every client out).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use fake_ceph::service::ServeConfig;
use fake_ceph::{MountRequest, Op};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::Fake;

/// Serves `f` with `config`; the address.
async fn serve(f: &Fake, config: ServeConfig) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app.clone();
    tokio::spawn(fake_ceph::service::serve(
        listener,
        app,
        config,
        std::future::pending(),
    ));
    addr
}

/// Reads until the server closes the connection (EOF or reset) or `within` passes;
/// whether it closed, and how many bytes came before.
async fn closes_within(s: &mut TcpStream, within: Duration) -> (bool, usize) {
    let deadline = Instant::now() + within;
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, total),
            Ok(Ok(n)) => total += n,
            Err(_) => return (false, total),
        }
    }
}

#[tokio::test]
async fn silent_idle_and_half_sent_connections_are_closed_after_the_timeouts() {
    let f = Fake::new();
    let path = f.subvolume("big", None).await;
    let m = f
        .cluster
        .mount(
            "client.admin",
            &f.admin_key,
            MountRequest {
                fs_name: None,
                root: path,
                client_metadata: Default::default(),
            },
        )
        .await
        .unwrap();
    m.op(Op::Write {
        path: "f".into(),
        offset: 0,
        len: 4 << 20,
        data: None,
    })
    .await
    .unwrap();
    let timeout = Duration::from_millis(300);
    let addr = serve(
        &f,
        ServeConfig {
            header_read_timeout: timeout,
            idle_timeout: timeout,
            max_connections: 64,
            ..ServeConfig::default()
        },
    )
    .await;
    let connect = || TcpStream::connect(addr);
    let mut conns: Vec<(&str, TcpStream)> = Vec::new();
    for _ in 0..10 {
        conns.push(("silent", connect().await.unwrap()));
    }
    for _ in 0..10 {
        let mut s = connect().await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        conns.push(("half-sent head", s));
    }
    for _ in 0..5 {
        let mut s = connect().await.unwrap();
        s.write_all(b"POST /request HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prefix\"")
            .await
            .unwrap();
        conns.push(("half-sent body", s));
    }
    // A kept-alive connection that got its answer and stays.
    let mut s = connect().await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    conns.push(("idle kept-alive", s));
    // A client that asks for a large answer (four 4 MiB reads, ~22 MB of JSON) and
    // reads none of it.
    let ops = serde_json::json!({"ops": [
        {"op": "read", "path": "f", "offset": 0, "len": 4 << 20},
        {"op": "read", "path": "f", "offset": 0, "len": 4 << 20},
        {"op": "read", "path": "f", "offset": 0, "len": 4 << 20},
        {"op": "read", "path": "f", "offset": 0, "len": 4 << 20},
    ]})
    .to_string();
    // A small receive buffer, so the server's writes block early whatever the load.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let head = format!(
        "POST /mds/sessions/{}/ops HTTP/1.1\r\nHost: x\r\nX-Session-Token: {}\r\nContent-Length: {}\r\n\r\n",
        m.id(),
        m.token(),
        ops.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(ops.as_bytes()).await.unwrap();
    let stalled_reader = s;

    // Without the timeouts none of these would ever close; 5 s is a bound for a loaded
    // machine, not a measure (the timeouts are 300 ms).
    for (what, mut s) in conns {
        let (closed, _) = closes_within(&mut s, Duration::from_secs(5)).await;
        assert!(closed, "a {what} connection is still open");
    }
    // The stalled reader: the server gave up before the whole answer was written (it
    // has had seconds to fill the buffers and stall on them).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut s = stalled_reader;
    let (closed, got) = closes_within(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "the non-reading client is still connected");
    let whole = 4 * B64.encode(vec![0u8; 4 << 20]).len();
    assert!(
        got < whole,
        "got {got} bytes of {whole}: the answer was not cut"
    );
}

#[tokio::test]
async fn a_well_behaved_client_is_served_while_silent_connections_fill_the_limit() {
    let f = Fake::new();
    let limit = 8;
    // Long timeouts: only the limit's handling can help here.
    let addr = serve(
        &f,
        ServeConfig {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: limit,
            ..ServeConfig::default()
        },
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 * limit {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Half-sent heads too.
    for _ in 0..limit {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        silent.push(s);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..2 * limit {
        let r = client
            .post(format!("http://{addr}/request"))
            .basic_auth("client.admin", Some(&f.admin_key))
            .body(r#"{"prefix": "fs volume ls"}"#)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} was not served: {e}"));
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["ret"], 0, "{v}");
    }
    // The server holds at most `limit` connections: the others were closed to make room.
    let mut closed = 0;
    for mut s in silent {
        if closes_within(&mut s, Duration::from_millis(100)).await.0 {
            closed += 1;
        }
    }
    assert!(closed >= 4 * limit - limit, "only {closed} closed");
}
