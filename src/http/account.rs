//! Accounts over HTTP (SPEC §5): setup, login and logout, the caller, users, tokens, signed
//! URLs and the audit log. The work (hashing, files) runs on the blocking pool.

use std::net::IpAddr;

use serde::Deserialize;

use super::access::{Owner, caller, owner_of, peer};
use super::*;
use crate::auth::{COOKIE, Identity, NewSession, Role, Via, sign};

/// The request body as JSON of the `shape` named in the error.
async fn body_json<T: serde::de::DeserializeOwned>(
    payload: web::types::Payload,
    shape: &str,
) -> Result<T> {
    serde_json::from_slice(&read_body(payload).await?)
        .map_err(|e| Error::bad_request(format!("the body must be {shape}: {e}")))
}

/// A throttled answer gets `Retry-After`; everything else is returned as it is.
fn with_retry(st: &State, addr: IpAddr, r: Result<HttpResponse>) -> Result<HttpResponse> {
    match r {
        Err(e) if e.kind == Kind::TooManyRequests => {
            let wait = st.auth.retry_after_s(addr).unwrap_or(1);
            Ok(HttpResponse::build(status_of(e.kind))
                .header("retry-after", wait.to_string())
                .json(&json!({ "error": e.msg })))
        }
        r => r,
    }
}

fn cookie(st: &State, value: &str, max_age_s: i64) -> String {
    let secure = if st.tls { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}")
}

fn logged_in(st: &State, s: NewSession) -> HttpResponse {
    let max_age_s = st.config().auth.session_ms() / 1000;
    HttpResponse::Ok()
        .header("set-cookie", cookie(st, &s.secret, max_age_s))
        .json(&json!({"username": s.username, "role": s.role.as_str()}))
}

/// `{"needed"}`, and `me`: the caller as `/api/me` gives it, or null, so the UI learns
/// whether to show the login page without a failing request.
pub(super) async fn setup_state(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let me = caller(&req).ok().map(|who| {
        json!({"username": who.username, "role": who.role.as_str(), "auth": st.config().auth.enabled})
    });
    // With accounts off there is nobody to set up.
    let needed = st.config().auth.enabled && st.auth.setup_needed();
    Ok(json_ok(&json!({"needed": needed, "me": me})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupBody {
    code: String,
    username: String,
    password: String,
}

pub(super) async fn setup(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let addr = peer(&req);
    let r = async {
        let b: SetupBody = body_json(payload, "{\"code\", \"username\", \"password\"}").await?;
        let (auth, max) = (st.auth.clone(), st.config().auth.session_ms());
        let s = blocking(move || auth.setup(&b.code, &b.username, &b.password, addr, max)).await?;
        Ok(logged_in(&st, s))
    }
    .await;
    with_retry(&st, addr, r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

pub(super) async fn login(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let addr = peer(&req);
    let r = async {
        let b: LoginBody = body_json(payload, "{\"username\", \"password\"}").await?;
        let (auth, max) = (st.auth.clone(), st.config().auth.session_ms());
        let s = blocking(move || auth.login(&b.username, &b.password, addr, max)).await?;
        Ok(logged_in(&st, s))
    }
    .await;
    with_retry(&st, addr, r)
}

pub(super) async fn logout(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let who = caller(&req)?;
    if let Via::Session(hash) = &who.via {
        st.auth.logout(hash);
        let (auth, user, addr) = (st.auth.clone(), who.username.clone(), peer(&req));
        blocking(move || {
            auth.record(&user, addr, "logout", "");
            Ok(())
        })
        .await?;
    }
    Ok(HttpResponse::Ok()
        .header("set-cookie", cookie(&st, "", 0))
        .json(&json!({"status": "logged out"})))
}

pub(super) async fn me(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let who = caller(&req)?;
    Ok(json_ok(&json!({
        "username": who.username,
        "role": who.role.as_str(),
        "auth": st.config().auth.enabled,
    })))
}

pub(super) async fn users(st: State) -> Result<HttpResponse> {
    let a = st.auth.accounts();
    let list: Vec<Value> = a
        .users
        .iter()
        .map(|u| {
            json!({"username": u.username, "role": u.role.as_str(),
                   "created": time::rfc3339_us(u.created_ms * 1000)})
        })
        .collect();
    Ok(json_ok(&Value::Array(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

fn role_of(s: Option<&str>) -> Result<Role> {
    match s {
        None => Ok(Role::Viewer),
        Some(r) => Role::parse(r)
            .ok_or_else(|| Error::bad_request(format!("{r:?} is not a role (admin, viewer)"))),
    }
}

pub(super) async fn add_user(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let who = caller(&req)?;
    let b: NewUserBody = body_json(payload, "{\"username\", \"password\", \"role\"}").await?;
    let role = role_of(b.role.as_deref())?;
    let (auth, addr, by) = (st.auth.clone(), peer(&req), who.audit_name());
    let u =
        blocking(move || auth.add_user(&b.username, &b.password, role, Some(&by), addr)).await?;
    Ok(HttpResponse::Created().json(&json!({"username": u.username, "role": u.role.as_str()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
    /// Needed when users change their own password.
    #[serde(default)]
    current_password: Option<String>,
}

fn name_param(req: &HttpRequest) -> String {
    req.match_info().get("name").unwrap_or("").to_owned()
}

pub(super) async fn set_password(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let who = caller(&req)?;
    let name = name_param(&req);
    let own = who.username == name && matches!(who.via, Via::Session(_));
    if !own && who.role != Role::Admin {
        return Err(Error::new(
            Kind::Forbidden,
            "only an admin changes another user's password",
        ));
    }
    let b: PasswordBody = body_json(payload, "{\"password\", \"current_password\"}").await?;
    let addr = peer(&req);
    let auth = st.auth.clone();
    let keep = match &who.via {
        Via::Session(h) if own => Some(h.clone()),
        _ => None,
    };
    let r = blocking(move || {
        if own {
            let current = b.current_password.as_deref().ok_or_else(|| {
                Error::bad_request("current_password is needed to change your own password")
            })?;
            auth.check_password(&name, current, addr)?;
        }
        auth.set_password(&name, &b.password, keep.as_deref())?;
        auth.record(&who.audit_name(), addr, "user_password", &name);
        Ok(())
    })
    .await
    .map(|()| json_ok(&json!({"status": "changed"})));
    with_retry(&st, addr, r)
}

pub(super) async fn delete_user(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let who = caller(&req)?;
    let name = name_param(&req);
    let (auth, addr) = (st.auth.clone(), peer(&req));
    blocking(move || {
        auth.remove_user(&name)?;
        auth.record(&who.audit_name(), addr, "user_delete", &name);
        Ok(json!({"status": "deleted", "username": name}))
    })
    .await
    .map(|v| json_ok(&v))
}

pub(super) async fn tokens(st: State) -> Result<HttpResponse> {
    let a = st.auth.accounts();
    let list: Vec<Value> = a
        .tokens
        .iter()
        .map(|t| {
            json!({"id": t.id, "name": t.name, "role": t.role.as_str(),
                   "created": time::rfc3339_us(t.created_ms * 1000), "created_by": t.created_by})
        })
        .collect();
    Ok(json_ok(&Value::Array(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    #[serde(default)]
    role: Option<String>,
}

pub(super) async fn add_token(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let who = caller(&req)?;
    let b: NewTokenBody = body_json(payload, "{\"name\", \"role\"}").await?;
    let role = role_of(b.role.as_deref())?;
    let (auth, addr) = (st.auth.clone(), peer(&req));
    blocking(move || {
        let by = who.audit_name();
        let (id, token) = auth.add_token(&b.name, role, &by)?;
        auth.record(&by, addr, "token_add", &id);
        Ok(json!({"id": id, "token": token, "name": b.name, "role": role.as_str()}))
    })
    .await
    .map(|v| HttpResponse::Created().json(&v))
}

pub(super) async fn delete_token(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let who = caller(&req)?;
    let id = req.match_info().get("id").unwrap_or("").to_owned();
    let (auth, addr) = (st.auth.clone(), peer(&req));
    blocking(move || {
        auth.remove_token(&id)?;
        auth.record(&who.audit_name(), addr, "token_delete", &id);
        Ok(json!({"status": "deleted", "id": id}))
    })
    .await
    .map(|v| json_ok(&v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    path: String,
    #[serde(default)]
    expires_seconds: Option<i64>,
}

pub(super) async fn sign_url(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let who = caller(&req)?;
    let b: SignBody = body_json(payload, "{\"path\", \"expires_seconds\"}").await?;
    let ttl = b.expires_seconds.unwrap_or(sign::DEFAULT_TTL_S);
    if !(1..=sign::MAX_TTL_S).contains(&ttl) {
        return Err(Error::bad_request(format!(
            "expires_seconds must be from 1 to {}",
            sign::MAX_TTL_S
        )));
    }
    let (path, q) = b.path.split_once('?').unwrap_or((&b.path, ""));
    if !path.starts_with("/api/")
        || owner_of("GET", path) != Some(Owner::Viewer)
        || sign::is_signed(q)
        || b.path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(Error::bad_request(
            "path must be an /api/ path a viewer may GET, with its query and no signature",
        ));
    }
    let signer = match who.via {
        Via::Session(_) | Via::Signed => who.username.clone(),
        // A token or an open box signs as nobody in particular: such URLs need a user.
        _ => {
            return Err(Error::bad_request(
                "signed URLs are made by logged-in users",
            ));
        }
    };
    let (url, exp_s) = st.auth.sign(&b.path, &signer, ttl);
    Ok(json_ok(&json!({
        "url": url,
        "expires": time::rfc3339_us(exp_s * 1_000_000),
    })))
}

pub(super) async fn audit(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let q = query(&req);
    let start = time_param(&q, &["start", "start_time"])?;
    let end = time_param(&q, &["end", "end_time"])?;
    let (start_ms, end_ms) = (
        start.map(|us| us.div_euclid(1000)),
        end.map(|us| us.div_euclid(1000)),
    );
    let auth = st.auth.clone();
    let list = blocking(move || auth.audit.read(start_ms, end_ms)).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|e| {
            json!({"time": time::rfc3339_us(e.time_ms * 1000), "user": e.user,
                   "address": e.address, "action": e.action, "target": e.target})
        })
        .collect();
    Ok(json_ok(&Value::Array(out)))
}

/// Records what an identified caller did (lock, unlock, delete). Blocking.
pub(super) fn record(
    auth: &crate::auth::Auth,
    who: &Identity,
    addr: IpAddr,
    action: &str,
    target: &str,
) {
    auth.record(&who.audit_name(), addr, action, target);
}
