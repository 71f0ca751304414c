//! Secrets (passwords, tokens, cephx keys) reach neither logs nor other projects: the
//! access key appears only in access-rule views for the share's project.
//!
//! A test binary of its own: it installs a process-wide capturing subscriber, which a
//! thread-local one (`set_default`) cannot replace reliably while other tests run in the
//! same process (tracing caches per-callsite interest globally).

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use fake_manila::config::UserSpec;
use serde_json::json;

use support::{env_with, password_auth, wait};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_other_projects() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    const PASSWORD: &str = "correct-horse-battery-staple";
    let env = env_with(|c| {
        c.identity.users.push(UserSpec {
            name: "kim".into(),
            password: PASSWORD.into(),
            project: "kim".into(),
            roles: vec!["member".into()],
            id: None,
        });
    })
    .await;
    let t = env.token("kim", PASSWORD, "kim").await;
    let other = env.demo().await;
    // A refused login does not echo the password.
    let wrong = env
        .send(support::Req {
            method: axum::http::Method::POST,
            path: "/v3/auth/tokens",
            token: None,
            version: None,
            body: Some(password_auth("kim", "not-the-password-at-all", "kim")),
        })
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.text.contains("not-the-password-at-all"));

    let id = env.share(&t, "secret-share", 1).await;
    let action = format!("/v2/shares/{id}/action");
    let a = env
        .post(
            &t,
            "2.82",
            &action,
            json!({"allow_access": {"access_type": "cephx", "access_to": "kimuser"}}),
        )
        .await;
    let rid = a.body["access"]["id"].as_str().expect("rule id").to_owned();
    let key = wait(|| async {
        let a = env
            .get(&t, "2.82", &format!("/v2/share-access-rules/{rid}"))
            .await;
        a.body["access"]["access_key"].as_str().map(str::to_owned)
    })
    .await
    .expect("key");
    // Where the key shows: the rule views of its project.
    let l = env
        .get(&t, "2.82", &format!("/v2/share-access-rules?share_id={id}"))
        .await;
    assert!(l.text.contains(&key));
    // Nowhere else: share views, export locations, lists, another project's answers.
    for path in [
        format!("/v2/shares/{id}"),
        format!("/v2/shares/{id}/export_locations"),
        "/v2/shares/detail".to_owned(),
        "/v2/messages".to_owned(),
    ] {
        let a = env.get(&t, "2.82", &path).await;
        assert!(!a.text.contains(&key), "{path} shows the key");
    }
    for path in [
        format!("/v2/share-access-rules/{rid}"),
        format!("/v2/share-access-rules?share_id={id}"),
        "/v2/shares/detail?all_tenants=1".to_owned(),
    ] {
        let a = env.get(&other, "2.82", &path).await;
        assert!(
            !a.text.contains(&key),
            "another project sees the key at {path}"
        );
    }
    // Deny and delete, so the delete path logs too.
    env.post(
        &t,
        "2.82",
        &action,
        json!({"deny_access": {"access_id": rid}}),
    )
    .await;
    wait(|| async {
        (env.get(&t, "2.82", &format!("/v2/share-access-rules/{rid}"))
            .await
            .status
            == StatusCode::NOT_FOUND)
            .then_some(())
    })
    .await
    .expect("denied");
    env.delete(&t, "2.82", &format!("/v2/shares/{id}")).await;
    env.wait_gone(&t, &format!("/v2/shares/{id}")).await;

    let text = String::from_utf8_lossy(&logs.0.lock().expect("log buffer")).into_owned();
    assert!(text.contains("manila request"), "the capture works");
    for (what, secret) in [
        ("the cephx key", key.as_str()),
        ("the token", t.as_str()),
        ("the other token", other.as_str()),
        ("the password", PASSWORD),
        ("the wrong password", "not-the-password-at-all"),
        ("the Ceph admin key", env.cluster.admin_key().as_str()),
    ] {
        assert!(!text.contains(secret), "{what} is in the logs");
    }
}
