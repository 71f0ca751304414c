//! The router served on a real TCP socket, with a real HTTP client.

use serde_json::{Value, json};

use crate::support::Fake;

#[tokio::test]
async fn commands_and_mounts_over_a_real_socket() {
    let f = Fake::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}");
    let send = |cmd: Value| {
        client
            .post(format!("{url}/request"))
            .basic_auth("client.admin", Some(&f.admin_key))
            .body(cmd.to_string())
            .send()
    };
    let r: Value = send(
        json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r, json!({"ret": 0, "outb": "", "outs": ""}));
    // Many concurrent creates of distinct subvolumes all succeed.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..32 {
        let (client, url, key) = (client.clone(), url.clone(), f.admin_key.clone());
        set.spawn(async move {
            let cmd = json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi", "sub_name": format!("v{i}")});
            let resp = client.post(format!("{url}/request")).basic_auth("client.admin", Some(&key)).body(cmd.to_string()).send().await.unwrap();
            resp.json::<Value>().await.unwrap()
        });
    }
    while let Some(v) = set.join_next().await {
        assert_eq!(v.unwrap()["ret"], 0);
    }
    let ls: Value =
        send(json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "csi"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let list: Value = serde_json::from_str(ls["outb"].as_str().unwrap()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 32);
    let resp = client
        .post(format!("{url}/request"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A mount over HTTP.
    let path: Value = send(json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "group_name": "csi", "sub_name": "v0"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s: Value = client
        .post(format!("{url}/mds/sessions"))
        .basic_auth("client.admin", Some(&f.admin_key))
        .body(json!({"root": path["outb"].as_str().unwrap().trim_end()}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["ret"], 0, "{s}");
    assert_eq!(f.cluster.session_count(), 1);
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("fake_ceph_mds_sessions 1"), "{metrics}");
}
