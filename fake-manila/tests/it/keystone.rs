//! Keystone: discovery, the authentication variants, tokens, projects.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use fake_manila::config::{AppCredentialSpec, IdentityConfig, UserSpec};
use serde_json::{Value, json};

use crate::support::{Env, KEYSTONE_URL, MANILA_URL, Req, env, env_with, password_auth};

async fn auth(env: &Env, body: Value) -> crate::support::Answer {
    env.send(Req {
        method: Method::POST,
        path: "/v3/auth/tokens",
        token: None,
        version: None,
        body: Some(body),
    })
    .await
}

#[tokio::test]
async fn version_documents() {
    let env = env().await;
    let a = env
        .send(Req {
            method: Method::GET,
            path: "/v3",
            token: None,
            version: None,
            body: None,
        })
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["version"]["id"], "v3.14");
    assert_eq!(
        a.body["version"]["links"][0]["href"],
        format!("{KEYSTONE_URL}/v3/")
    );
    let a = env
        .send(Req {
            method: Method::GET,
            path: "/v3/",
            token: None,
            version: None,
            body: None,
        })
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn password_by_name_returns_token_and_catalog() {
    let env = env().await;
    let a = auth(&env, password_auth("demo", "demo", "demo")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert!(a.headers.contains_key("x-subject-token"));
    let t = &a.body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["user"]["name"], "demo");
    assert_eq!(t["project"]["name"], "demo");
    assert_eq!(t["project"]["domain"]["id"], "default");
    assert!(t["expires_at"].as_str().expect("expires_at").ends_with('Z'));
    let catalog = t["catalog"].as_array().expect("catalog");
    let find = |ty: &str| catalog.iter().find(|e| e["type"] == ty).cloned().expect(ty);
    let share = find("sharev2");
    let urls: Vec<&str> = share["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["url"].as_str().expect("url"))
        .collect();
    // Manila's own endpoint, not Keystone's.
    let want = format!("{MANILA_URL}/v2");
    assert_eq!(urls, [want.as_str(); 3]);
    assert_eq!(
        find("identity")["endpoints"][0]["url"],
        format!("{KEYSTONE_URL}/v3")
    );
    // Project IDs must match Manila's project_id_regex.
    let pid = t["project"]["id"].as_str().expect("project id");
    assert!(pid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        t["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .all(|r| r["name"] != "admin")
    );
}

#[tokio::test]
async fn password_variants() {
    let env = env().await;
    let first = auth(&env, password_auth("demo", "demo", "demo")).await;
    let user_id = first.body["token"]["user"]["id"]
        .as_str()
        .expect("uid")
        .to_owned();
    let project_id = first.body["token"]["project"]["id"]
        .as_str()
        .expect("pid")
        .to_owned();
    let ok = |body: Value| async { auth(&env, body).await.status };
    // User by ID, project by ID (gophercloud's shape).
    let by_id = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": "demo"}}},
        "scope": {"project": {"id": project_id}}}});
    assert_eq!(ok(by_id).await, StatusCode::CREATED);
    // Domains by ID.
    let dom_id = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"id": "default"}, "password": "demo"}}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}});
    assert_eq!(ok(dom_id).await, StatusCode::CREATED);
    // No scope: the user's project.
    let unscoped = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "demo"}}}}});
    let a = auth(&env, unscoped).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.body["token"]["project"]["id"], project_id.as_str());
    // Refusals.
    for (body, code) in [
        (password_auth("demo", "wrong", "demo"), 401),
        (password_auth("nobody", "demo", "demo"), 401),
        (password_auth("demo", "demo", "admin"), 401),
        (password_auth("demo", "demo", "nosuch"), 401),
        (
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Other"}, "password": "demo"}}}}}),
            401,
        ),
        (json!({"auth": {"identity": {"methods": ["totp"]}}}), 401),
        (json!({"auth": {}}), 400),
        (json!([1, 2]), 400),
    ] {
        let a = auth(&env, body.clone()).await;
        assert_eq!(a.status.as_u16(), code, "{body}: {}", a.text);
        assert_eq!(a.body["error"]["code"], code, "{}", a.text);
        assert!(!a.headers.contains_key("x-subject-token"));
    }
    let a = env
        .raw(
            Request::post("/v3/auth/tokens")
                .body(Body::from("{not json"))
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["title"], "Bad Request");
}

#[tokio::test]
async fn application_credentials() {
    let env = env_with(|c| {
        c.identity.application_credentials.push(AppCredentialSpec {
            name: "ci".into(),
            secret: "s3cret".into(),
            user: "demo".into(),
            id: Some("0123456789abcdef0123456789abcdef".into()),
        });
    })
    .await;
    let by_id = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": "0123456789abcdef0123456789abcdef", "secret": "s3cret"}}}});
    let a = auth(&env, by_id).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(
        a.body["token"]["methods"],
        json!(["application_credential"])
    );
    assert_eq!(a.body["token"]["project"]["name"], "demo");
    assert_eq!(a.body["token"]["application_credential"]["name"], "ci");
    let by_name = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"name": "ci", "secret": "s3cret", "user": {"name": "demo", "domain": {"name": "Default"}}}}}});
    assert_eq!(auth(&env, by_name).await.status, StatusCode::CREATED);
    let wrong = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"name": "ci", "secret": "nope", "user": {"name": "demo", "domain": {"name": "Default"}}}}}});
    assert_eq!(auth(&env, wrong).await.status, StatusCode::UNAUTHORIZED);
    let scoped = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": "0123456789abcdef0123456789abcdef", "secret": "s3cret"}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    assert_eq!(auth(&env, scoped).await.status, StatusCode::UNAUTHORIZED);
    // The token works on Manila.
    let t = auth(&env, json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": "0123456789abcdef0123456789abcdef", "secret": "s3cret"}}}}))
        .await;
    let token = t.headers["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        env.get(&token, "2.65", "/v2/shares").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn manila_needs_a_valid_token() {
    let env = env().await;
    for token in [None, Some("bogus")] {
        let a = env
            .send(Req {
                method: Method::GET,
                path: "/v2/shares",
                token,
                version: Some("2.65"),
                body: None,
            })
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.body["error"]["message"],
            "The request you have made requires authentication."
        );
        assert_eq!(
            a.headers["www-authenticate"].to_str().expect("ascii"),
            format!("Keystone uri='{KEYSTONE_URL}/v3'")
        );
    }
    // Discovery needs none.
    let a = env
        .send(Req {
            method: Method::GET,
            path: "/v2/",
            token: None,
            version: None,
            body: None,
        })
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_expire_validate_and_revoke() {
    let env = env_with(|c| c.token_ttl = Duration::from_millis(300)).await;
    let admin = env.admin().await;
    let demo = env.demo().await;
    let check = |subject: String, method: Method| {
        let admin = admin.clone();
        let env = &env;
        async move {
            let req = Request::builder()
                .method(method)
                .uri("/v3/auth/tokens")
                .header("x-auth-token", admin)
                .header("x-subject-token", subject)
                .body(Body::empty())
                .expect("request");
            env.raw(req).await
        }
    };
    let a = check(demo.clone(), Method::GET).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["token"]["user"]["name"], "demo");
    assert_eq!(
        check(demo.clone(), Method::HEAD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        check("nope".into(), Method::GET).await.status,
        StatusCode::NOT_FOUND
    );
    // Revoked tokens stop working.
    let other = env.demo().await;
    assert_eq!(
        check(other.clone(), Method::DELETE).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.get(&other, "2.0", "/v2/shares").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Expired tokens too.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        env.get(&demo, "2.0", "/v2/shares").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn projects_lookup() {
    let env = env_with(|c| {
        c.identity = IdentityConfig {
            users: vec![
                UserSpec {
                    name: "demo".into(),
                    password: "demo".into(),
                    project: "demo".into(),
                    roles: vec!["member".into()],
                    id: None,
                },
                UserSpec {
                    name: "admin".into(),
                    password: "admin".into(),
                    project: "admin".into(),
                    roles: vec!["admin".into()],
                    id: None,
                },
                UserSpec {
                    name: "other".into(),
                    password: "other".into(),
                    project: "other".into(),
                    roles: vec!["member".into()],
                    id: None,
                },
            ],
            application_credentials: vec![],
            projects: vec![fake_manila::config::ProjectSpec {
                name: "other".into(),
                id: "aaaa-bbbb".into(),
            }],
        };
    })
    .await;
    let demo = env.demo().await;
    let admin = env.admin().await;
    let list = |t: String, q: &'static str| {
        let env = &env;
        async move {
            env.raw(
                Request::get(q)
                    .header("x-auth-token", t)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
        }
    };
    let a = list(admin.clone(), "/v3/projects?name=other").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["projects"][0]["id"], "aaaa-bbbb");
    assert_eq!(a.body["projects"].as_array().map(Vec::len), Some(1));
    let a = list(admin.clone(), "/v3/projects").await;
    assert_eq!(a.body["projects"].as_array().map(Vec::len), Some(3));
    // A member sees its own project only.
    let a = list(demo.clone(), "/v3/projects?name=other").await;
    assert_eq!(a.body["projects"].as_array().map(Vec::len), Some(0));
    let a = list(demo.clone(), "/v3/projects?name=demo").await;
    assert_eq!(a.body["projects"][0]["name"], "demo");
    assert_eq!(
        list(demo.clone(), "/v3/projects/demo").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        list(admin.clone(), "/v3/projects/aaaa-bbbb").await.status,
        StatusCode::OK
    );
    assert_eq!(
        list("bad".into(), "/v3/projects").await.status,
        StatusCode::UNAUTHORIZED
    );
    let a = list(demo, "/v3/auth/projects").await;
    assert_eq!(a.body["projects"][0]["name"], "demo");
}

/// Keystone's token policies (`keystone/common/policies/token.py`, with the deprecated
/// rules it still ORs in): `HEAD` (`identity:check_token`) and `DELETE`
/// (`identity:revoke_token`) are for an admin or the token's own user; `GET`
/// (`identity:validate_token`) also for the `service` role. The subject token is looked
/// up first (404), the policy checked next (403 with Keystone's error body).
#[tokio::test]
async fn only_the_token_owner_or_an_admin_may_validate_or_revoke_it() {
    let env = env_with(|c| {
        c.identity.users.push(UserSpec {
            name: "manila".into(),
            password: "manila".into(),
            project: "service".into(),
            roles: vec!["service".into()],
            id: None,
        });
    })
    .await;
    let call = |caller: String, subject: Option<String>, method: Method| {
        let env = &env;
        async move {
            let mut req = Request::builder()
                .method(method)
                .uri("/v3/auth/tokens")
                .header("x-auth-token", caller);
            if let Some(s) = subject {
                req = req.header("x-subject-token", s);
            }
            env.raw(req.body(Body::empty()).expect("request")).await
        }
    };
    let (demo, admin, service) = (
        env.demo().await,
        env.admin().await,
        env.token("manila", "manila", "service").await,
    );
    let tokens = [("demo", &demo), ("admin", &admin), ("service", &service)];
    let token = |name: &str| {
        tokens
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (*t).clone())
    };
    // (caller, subject's owner, method, status, the action a 403 names)
    let cases = [
        (
            "demo",
            "admin",
            Method::DELETE,
            403,
            "identity:revoke_token",
        ),
        ("demo", "admin", Method::GET, 403, "identity:validate_token"),
        ("demo", "admin", Method::HEAD, 403, ""),
        ("service", "demo", Method::HEAD, 403, ""),
        (
            "service",
            "demo",
            Method::DELETE,
            403,
            "identity:revoke_token",
        ),
        ("demo", "none", Method::GET, 403, "identity:validate_token"),
        ("demo", "demo", Method::GET, 200, ""),
        ("demo", "demo", Method::HEAD, 200, ""),
        ("admin", "demo", Method::GET, 200, ""),
        ("admin", "demo", Method::HEAD, 200, ""),
        ("service", "demo", Method::GET, 200, ""),
        ("admin", "none", Method::GET, 404, ""),
    ];
    for (caller, subject, method, status, action) in cases {
        let what = format!("{method} by {caller} of {subject}'s token");
        let caller = token(caller).expect("a caller");
        let a = call(caller, token(subject), method).await;
        assert_eq!(a.status.as_u16(), status, "{what}: {}", a.text);
        if !action.is_empty() {
            assert_eq!(
                a.body["error"],
                json!({"code": 403, "title": "Forbidden",
                    "message": format!("You are not authorized to perform the requested action: {action}.")}),
                "{what}"
            );
        }
    }
    // A refused revocation leaves the token working.
    assert_eq!(
        env.get(&admin, "2.65", "/v2/shares").await.status,
        StatusCode::OK
    );
    // An unknown subject is a 404 even for someone who could not act on it.
    let a = call(demo.clone(), Some("nope".into()), Method::DELETE).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    assert_eq!(a.body["error"]["code"], 404);
    // The owner revokes its own token (from another of its tokens); an admin anyone's.
    let other = env.demo().await;
    assert_eq!(
        call(demo.clone(), Some(other.clone()), Method::DELETE)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(admin.clone(), Some(demo.clone()), Method::DELETE)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    for t in [&other, &demo] {
        assert_eq!(
            env.get(t, "2.65", "/v2/shares").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Issue 14 #6: tokens are bounded per user, so one user's flood evicts only its own
/// oldest tokens.
#[tokio::test]
async fn a_token_flood_evicts_only_the_flooding_users_tokens() {
    let env = env_with(|c| c.tokens_per_user = 20).await;
    let admin = env.admin().await;
    let mut demo = Vec::new();
    for _ in 0..200 {
        demo.push(env.demo().await);
    }
    let status = |t: &str| {
        let env = &env;
        let t = t.to_owned();
        async move { env.get(&t, "2.65", "/v2/shares").await.status }
    };
    assert_eq!(status(&admin).await, StatusCode::OK, "the admin's token");
    assert_eq!(status(&demo[180]).await, StatusCode::OK, "demo's 20 newest");
    assert_eq!(status(&demo[199]).await, StatusCode::OK);
    assert_eq!(
        status(&demo[179]).await,
        StatusCode::UNAUTHORIZED,
        "demo's older ones"
    );
    assert_eq!(status(&demo[0]).await, StatusCode::UNAUTHORIZED);
}

/// Issue 14 #7: a service started without a seed draws its tokens from the OS, so its
/// first token differs from start to start; one given a seed repeats them, and its IDs
/// do not depend on where tokens come from.
#[tokio::test]
async fn tokens_come_from_the_os_unless_a_seed_is_given() {
    let first = env().await.demo().await;
    let again = env().await.demo().await;
    assert_ne!(first, again, "no seed: the first token is not predictable");
    let seeded = |seed: Option<u64>| async move {
        let env = env_with(|c| c.seed = seed).await;
        let token = env.demo().await;
        let a = env
            .post(
                &token,
                "2.65",
                "/v2/shares",
                json!({"share": {"share_proto": "CEPHFS", "size": 1}}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        (
            token,
            a.body["share"]["id"].as_str().expect("id").to_owned(),
        )
    };
    let (t1, id1) = seeded(Some(5)).await;
    let (t2, id2) = seeded(Some(5)).await;
    assert_eq!((&t1, &id1), (&t2, &id2), "one seed, one run");
    let (t0, id0) = seeded(Some(0)).await;
    let (tn, idn) = seeded(None).await;
    assert_ne!(t0, tn, "tokens follow the seed only when it is given");
    assert_eq!(
        id0, idn,
        "IDs follow seed 0 without one, whatever the tokens"
    );
}
