//! Who may call what (SPEC §5). Every route in [`super::ROUTES`] names its [`Owner`]; the
//! [`Access`] middleware finds the caller's identity (session cookie, bearer token or signed
//! URL), refuses what the owner does not allow, and hands the identity to the handler. A path
//! that matches no route needs an identity too, so nothing is public by omission.
//!
//! Deciding reads memory only (see `auth`); it never blocks the executor.

use std::net::IpAddr;

use ntex::service::{Middleware, Service, ServiceCtx, cfg::SharedCfg};
use ntex::web::{DefaultError, WebRequest, WebResponse};

use super::*;
use crate::auth::{COOKIE, Identity, Role, Via};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Anyone: the UI, health, setup and login.
    Public,
    /// Any identity: viewers and admins.
    Viewer,
    /// Admins only.
    Admin,
    /// `/metrics`: any identity, or anyone with `auth.public_metrics = true`.
    Metrics,
}

/// The owner of `method path`, from the route table; `None` when no route matches.
pub fn owner_of(method: &str, path: &str) -> Option<Owner> {
    ROUTES
        .iter()
        .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && pattern_matches(p, path))
        .map(|(_, _, o)| *o)
}

/// `/api/x/{id}/y` matches `/api/x/42/y`: a `{…}` segment is any one non-empty segment.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut a = pattern.split('/');
    let mut b = path.split('/');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(p), Some(s)) if p.starts_with('{') && !s.is_empty() => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// The client's address, for throttling and the audit log.
pub fn peer(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

/// The identity the middleware found (every non-public route has one).
pub fn caller(req: &HttpRequest) -> Result<Identity> {
    req.extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Error::new(Kind::Unauthorized, "log in first"))
}

/// The value of the session cookie, if sent.
pub fn session_cookie(headers: &ntex::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(ntex::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// A request from a page of another site (SPEC §5): `Sec-Fetch-Site: cross-site`, or an
/// `Origin` other than the host asked.
fn cross_site(headers: &ntex::http::HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if get("sec-fetch-site").is_some_and(|v| v.eq_ignore_ascii_case("cross-site")) {
        return true;
    }
    match get("origin") {
        None => false,
        Some(origin) => {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            match (authority, get("host")) {
                (Some(a), Some(host)) => !a.eq_ignore_ascii_case(host),
                _ => true,
            }
        }
    }
}

fn unsafe_method(m: &ntex::http::Method) -> bool {
    !matches!(m.as_str(), "GET" | "HEAD" | "OPTIONS")
}

/// The identity of a request to a route owned by `owner`, `None` for a public route, or why
/// it is refused.
fn decide(shared: &Shared, req: &WebRequest<DefaultError>) -> Result<Option<Identity>> {
    let owner = owner_of(req.method().as_str(), req.path()).unwrap_or(Owner::Viewer);
    let config = shared.config();
    if !config.auth.enabled {
        return Ok(Some(Identity {
            username: String::new(),
            role: Role::Admin,
            via: Via::Open,
        }));
    }
    let public = owner == Owner::Public || (owner == Owner::Metrics && config.auth.public_metrics);
    let headers = req.headers();
    let auth = &shared.auth;
    // A page of another site may not change anything here, logged in or not (a login or the
    // setup forged from elsewhere included); scripts with a token send no Origin of a site.
    if unsafe_method(req.method())
        && !headers.contains_key(ntex::http::header::AUTHORIZATION)
        && cross_site(headers)
    {
        return Err(Error::new(
            Kind::Forbidden,
            "a cross-site request cannot change anything",
        ));
    }
    let who = if let Some(value) = headers.get(ntex::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token.and_then(|t| auth.token(t)) {
            Some(id) => id,
            None if public => return Ok(None),
            None => {
                return Err(Error::new(Kind::Unauthorized, "the API token is not valid"));
            }
        }
    } else if let Some(secret) = session_cookie(headers) {
        match auth.session(secret, config.auth.session_ms()) {
            Some(id) => id,
            None if public => return Ok(None),
            None => {
                return Err(Error::new(
                    Kind::Unauthorized,
                    "the session has ended; log in again",
                ));
            }
        }
    } else if crate::auth::sign::is_signed(req.query_string()) {
        let id = auth.signed(req.path(), req.query_string())?;
        if !matches!(req.method().as_str(), "GET" | "HEAD") || owner != Owner::Viewer {
            return Err(Error::new(
                Kind::Forbidden,
                "a signed URL only opens what a viewer may watch",
            ));
        }
        id
    } else if public {
        return Ok(None);
    } else {
        return Err(Error::new(
            Kind::Unauthorized,
            "log in, or send Authorization: Bearer TOKEN",
        ));
    };
    if owner == Owner::Admin && who.role != Role::Admin {
        return Err(Error::new(Kind::Forbidden, "this needs an admin"));
    }
    Ok(Some(who))
}

/// The middleware: see the module comment.
pub struct Access(pub Arc<Shared>);

pub struct AccessService<S> {
    service: S,
    shared: Arc<Shared>,
}

impl<S> Middleware<S, SharedCfg> for Access {
    type Service = AccessService<S>;

    fn create(&self, service: S, _: SharedCfg) -> Self::Service {
        AccessService {
            service,
            shared: self.0.clone(),
        }
    }
}

impl<S> Service<WebRequest<DefaultError>> for AccessService<S>
where
    S: Service<WebRequest<DefaultError>, Response = WebResponse>,
{
    type Response = WebResponse;
    type Error = S::Error;

    ntex::forward_poll!(service);
    ntex::forward_ready!(service);
    ntex::forward_shutdown!(service);

    async fn call(
        &self,
        req: WebRequest<DefaultError>,
        ctx: ServiceCtx<'_, Self>,
    ) -> Result<Self::Response, Self::Error> {
        match decide(&self.shared, &req) {
            Ok(who) => {
                if let Some(who) = who {
                    req.extensions_mut().insert(who);
                }
                ctx.call(&self.service, req).await
            }
            Err(e) => Ok(req.render_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert!(pattern_matches(
            "/api/recordings/{id}",
            "/api/recordings/42"
        ));
        assert!(!pattern_matches("/api/recordings/{id}", "/api/recordings/"));
        assert!(!pattern_matches(
            "/api/recordings/{id}",
            "/api/recordings/4/stream"
        ));
        assert!(pattern_matches("/", "/"));
        assert_eq!(owner_of("GET", "/api/health"), Some(Owner::Public));
        assert_eq!(owner_of("DELETE", "/api/recordings/1"), Some(Owner::Admin));
        assert_eq!(owner_of("GET", "/api/nothing"), None);
    }
}
