//! The accounts logic on a simulated clock: setup mode, logins and throttling, session
//! expiry, tokens, signed URLs, and files changed behind the daemon's back.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use super::*;

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

const DAY: i64 = 86_400_000;
const MAX_AGE: i64 = 30 * DAY;

fn addr(n: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, n])
}

struct Box {
    dir: PathBuf,
    clock: Arc<TestClock>,
    auth: Auth,
}

impl Box {
    fn new(tag: &str) -> Box {
        let dir = std::env::temp_dir().join(format!("wf-auth-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let clock = Arc::new(TestClock(AtomicI64::new(1_700_000_000_000)));
        let auth = Auth::open(&dir, clock.clone()).unwrap();
        Box { dir, clock, auth }
    }

    fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::Relaxed);
    }

    fn code(&self) -> String {
        std::fs::read_to_string(self.dir.join(SETUP_CODE_FILE))
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Drop for Box {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_setup_code_works_once_and_only_with_the_right_value() {
    let b = Box::new("setup");
    assert!(b.auth.setup_needed());
    let code = b.code();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(b.dir.join(SETUP_CODE_FILE))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let e = b
        .auth
        .setup("AAAA-BBBB-CCCC", "ann", "a good password", addr(1), MAX_AGE);
    assert_eq!(e.err().map(|e| e.kind), Some(Kind::Forbidden));
    assert!(b.auth.setup_needed());
    // Case and dashes do not matter.
    let s = b
        .auth
        .setup(
            &code.to_lowercase().replace('-', " "),
            "ann",
            "a good password",
            addr(1),
            MAX_AGE,
        )
        .unwrap();
    assert_eq!((s.username.as_str(), s.role), ("ann", Role::Admin));
    assert!(!b.auth.setup_needed());
    assert!(!b.dir.join(SETUP_CODE_FILE).exists());
    let again = b
        .auth
        .setup(&code, "eve", "a good password", addr(1), MAX_AGE);
    assert_eq!(again.err().map(|e| e.kind), Some(Kind::Conflict));
    assert_eq!(b.auth.session(&s.secret, MAX_AGE).unwrap().username, "ann");
}

#[test]
fn a_restart_makes_a_new_code() {
    let b = Box::new("restart");
    let first = b.code();
    let again = Auth::open(&b.dir, b.clock.clone()).unwrap();
    let second = b.code();
    assert_ne!(first, second);
    let e = again.setup(&first, "ann", "a good password", addr(1), MAX_AGE);
    assert_eq!(e.err().map(|e| e.kind), Some(Kind::Forbidden));
    again
        .setup(&second, "ann", "a good password", addr(1), MAX_AGE)
        .unwrap();
}

#[test]
fn logins_fail_alike_and_are_throttled_on_the_clock() {
    let b = Box::new("login");
    b.auth
        .add_user("ann", "a good password", Role::Admin, None, addr(9))
        .unwrap();
    let wrong = b
        .auth
        .login("ann", "wrong password", addr(1), MAX_AGE)
        .err()
        .unwrap();
    let unknown = b
        .auth
        .login("nobody", "wrong password", addr(1), MAX_AGE)
        .err()
        .unwrap();
    assert_eq!((wrong.kind, &wrong.msg), (unknown.kind, &unknown.msg));
    assert_eq!(wrong.kind, Kind::Unauthorized);
    for _ in 0..3 {
        assert!(b.auth.login("ann", "wrong", addr(1), MAX_AGE).is_err());
    }
    // The sixth attempt is refused without looking at the password, even a right one.
    let e = b
        .auth
        .login("ann", "a good password", addr(1), MAX_AGE)
        .err()
        .unwrap();
    assert_eq!(e.kind, Kind::TooManyRequests);
    assert_eq!(b.auth.retry_after_s(addr(1)), Some(5));
    assert!(
        b.auth
            .login("ann", "a good password", addr(2), MAX_AGE)
            .is_ok()
    );
    b.advance(5_000);
    assert!(
        b.auth
            .login("ann", "a good password", addr(1), MAX_AGE)
            .is_ok()
    );
    let log = b.auth.audit.read(None, None).unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "login_failed").count(), 5);
    assert_eq!(actions.iter().filter(|a| **a == "login").count(), 2);
}

#[test]
fn sessions_expire_on_the_clock_and_with_their_user() {
    let b = Box::new("expiry");
    b.auth
        .add_user("ann", "a good password", Role::Admin, None, addr(9))
        .unwrap();
    b.auth
        .add_user("bob", "a good password", Role::Viewer, None, addr(9))
        .unwrap();
    let s = b
        .auth
        .login("bob", "a good password", addr(1), MAX_AGE)
        .unwrap();
    assert_eq!(
        b.auth.session(&s.secret, MAX_AGE).unwrap().role,
        Role::Viewer
    );
    assert!(b.auth.session("forged", MAX_AGE).is_none());
    b.advance(8 * DAY);
    assert!(
        b.auth.session(&s.secret, MAX_AGE).is_none(),
        "idle for 8 days"
    );
    let s = b
        .auth
        .login("bob", "a good password", addr(1), MAX_AGE)
        .unwrap();
    b.auth.remove_user("bob").unwrap();
    assert!(b.auth.session(&s.secret, MAX_AGE).is_none(), "user deleted");
    // Sessions survive a restart.
    let s = b
        .auth
        .login("ann", "a good password", addr(1), MAX_AGE)
        .unwrap();
    b.auth.flush();
    let again = Auth::open(&b.dir, b.clock.clone()).unwrap();
    assert!(again.session(&s.secret, MAX_AGE).is_some());
    // A password change ends the other sessions, keeping the one that made it.
    let other = again
        .login("ann", "a good password", addr(1), MAX_AGE)
        .unwrap();
    let keep = match again.session(&s.secret, MAX_AGE).unwrap().via {
        Via::Session(h) => h,
        v => panic!("{v:?}"),
    };
    again
        .set_password("ann", "another password", Some(&keep))
        .unwrap();
    assert!(again.session(&s.secret, MAX_AGE).is_some());
    assert!(again.session(&other.secret, MAX_AGE).is_none());
}

#[test]
fn tokens_are_shown_once_and_revocable() {
    let b = Box::new("tokens");
    let (id, token) = b.auth.add_token("prometheus", Role::Viewer, "ann").unwrap();
    let who = b.auth.token(&token).unwrap();
    assert_eq!(
        (who.role, who.via.clone()),
        (Role::Viewer, Via::Token(id.clone()))
    );
    let file = std::fs::read_to_string(b.dir.join(accounts::FILE)).unwrap();
    assert!(!file.contains(&token), "only the hash is kept");
    assert!(b.auth.token("wf_forged").is_none());
    b.auth.remove_token(&id).unwrap();
    assert!(b.auth.token(&token).is_none());
    assert_eq!(
        b.auth.remove_token(&id).err().map(|e| e.kind),
        Some(Kind::NotFound)
    );
}

#[test]
fn signed_urls_expire_on_the_clock() {
    let b = Box::new("sign");
    b.auth
        .add_user("ann", "a good password", Role::Admin, None, addr(9))
        .unwrap();
    let (url, _) = b.auth.sign("/api/recordings/1/stream", "ann", 60);
    let (p, q) = url.split_once('?').unwrap();
    assert_eq!(b.auth.signed(p, q).unwrap().role, Role::Viewer);
    b.advance(60_000);
    assert_eq!(
        b.auth.signed(p, q).err().map(|e| e.kind),
        Some(Kind::Unauthorized)
    );
}

#[test]
fn users_added_behind_the_daemons_back_apply_on_reload() {
    let b = Box::new("reload");
    assert!(b.auth.setup_needed());
    let hash = password::hash("a good password").unwrap();
    Accounts::modify(&b.dir, |a| a.add_user("ann", Role::Admin, hash, 0)).unwrap();
    b.auth.reload().unwrap();
    assert!(!b.auth.setup_needed());
    assert!(!b.dir.join(SETUP_CODE_FILE).exists());
    assert!(
        b.auth
            .login("ann", "a good password", addr(1), MAX_AGE)
            .is_ok()
    );
}
