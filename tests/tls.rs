//! HTTPS: a certificate made at test time by `openssl`, checked with `curl --cacert`; the
//! cookie gets `Secure`; SIGHUP swaps in a renewed certificate; unreadable files are refused.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Daemon, PASSWORD, Signal, TempDir, write_config};

/// A self-signed certificate for 127.0.0.1 and localhost: `{name}.pem` and `{name}.key`.
fn make_cert(dir: &Path, name: &str) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.pem")))
        .output()
        .expect("openssl (installed by .ci/setup --test)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl --cacert CA`: (exit code, HTTP status, headers).
fn curl(ca: &Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(ca)
        .args(args)
        .arg(url)
        .output()
        .expect("curl (installed by .ci/setup --test)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.lines().last().unwrap_or("").to_owned();
    (out.status.code().unwrap_or(-1), status, text)
}

fn with_tls(cfg: &Path, cert: &Path, key: &Path) {
    let text = std::fs::read_to_string(cfg).unwrap().replace(
        "[http]\n",
        &format!(
            "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    std::fs::write(cfg, text).unwrap();
}

#[test]
fn https_with_a_certificate_made_now_and_renewed_on_sighup() {
    let dir = TempDir::new("tls");
    let d0 = dir.path();
    make_cert(d0, "one");
    make_cert(d0, "two");
    let cfg = write_config(d0, "");
    with_tls(&cfg, &d0.join("one.pem"), &d0.join("one.key"));
    let mut d = Daemon::start(&cfg);
    let line = d
        .wait_log("http: listening on ", Duration::from_secs(20))
        .unwrap();
    assert!(line.ends_with("(https)"), "{line}");
    let addr = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let url = |p: &str| format!("https://{addr}{p}");

    let (code, status, _) = curl(&d0.join("one.pem"), &url("/api/health"), &[]);
    assert_eq!((code, status.as_str()), (0, "200"));
    // Plain HTTP on the TLS port gets no answer it could use.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("http://{addr}/api/health"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");

    let body = format!("{{\"username\":\"{ADMIN}\",\"password\":\"{PASSWORD}\"}}");
    let (_, status, head) = curl(
        &d0.join("one.pem"),
        &url("/api/login"),
        &["-H", "content-type: application/json", "--data", &body],
    );
    assert_eq!(status, "200", "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (_, status, _) = curl(
        &d0.join("one.pem"),
        &url("/api/streams"),
        &["-H", &format!("Cookie: {session}")],
    );
    assert_eq!(status, "200");

    // Renewal: the files are replaced and SIGHUP makes the daemon serve the new pair.
    std::fs::copy(d0.join("two.pem"), d0.join("one.pem.new")).unwrap();
    std::fs::copy(d0.join("two.key"), d0.join("one.key")).unwrap();
    std::fs::rename(d0.join("one.pem.new"), d0.join("one.pem")).unwrap();
    d.signal(Signal::SIGHUP);
    assert!(
        d.wait_log("certificate", Duration::from_secs(10))
            .unwrap()
            .contains("reloaded")
    );
    let (code, status, _) = curl(&d0.join("two.pem"), &url("/api/health"), &[]);
    assert_eq!((code, status.as_str()), (0, "200"));

    // A broken renewal is logged and the running certificate stays.
    std::fs::write(d0.join("one.key"), "not a key").unwrap();
    d.signal(Signal::SIGHUP);
    assert!(
        d.wait_log("the running certificate stays", Duration::from_secs(10))
            .is_some()
    );
    let (code, status, _) = curl(&d0.join("two.pem"), &url("/api/health"), &[]);
    assert_eq!((code, status.as_str()), (0, "200"));
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());

    // At start, a key that cannot be read stops the daemon with the file named.
    let out = Command::new(common::bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("one.key"), "{err}");
}

#[test]
fn a_certificate_without_its_key_is_a_config_error() {
    let dir = TempDir::new("tlscfg");
    let cfg = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[http]\n", "[http]\ntls_cert = \"/x.pem\"\n");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(common::bin())
        .args(["check-config", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(
        msg.contains("http.tls_cert and http.tls_key: set both"),
        "{msg}"
    );
}
