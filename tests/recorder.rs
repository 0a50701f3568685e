//! The recorder inside the real daemon, recording from a real RTSP server (Debian's GStreamer
//! RTSP server) with real ffmpeg. Each case asserts on the files and on the index.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::hostile::{self, Expect};
use common::{
    Daemon, RtspServer, Signal, TempDir, ffmpeg_children, http, pid_alive, wait_for, write_config,
};
use wallflower_nvr::index::{Recording, Store};
use wallflower_nvr::media::probe_file;
use wallflower_nvr::time::{parse_segment_name, segment_name};

const SEGMENT_SECONDS: u32 = 2;

fn streams_toml(server: &RtspServer, streams: &[(&str, bool)]) -> String {
    streams
        .iter()
        .map(|(id, enabled)| {
            format!(
                "[[streams]]\nid = \"{id}\"\nurl = \"{}\"\nenabled = {enabled}\nsegment_seconds = {SEGMENT_SECONDS}\n",
                server.url(id)
            )
        })
        .collect()
}

/// Segment files of `stream` on disk, oldest first.
fn files(dir: &Path, stream: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("recordings").join(stream))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.retain(|n| parse_segment_name(n).is_some());
    v.sort();
    v
}

/// The index, read after the daemon has exited.
fn index(dir: &Path) -> BTreeMap<String, Vec<Recording>> {
    let store = Store::open(&dir.join("index.redb")).unwrap();
    let mut out: BTreeMap<String, Vec<Recording>> = BTreeMap::new();
    for r in store.all().unwrap() {
        out.entry(r.stream_id.clone()).or_default().push(r);
    }
    assert_eq!(
        store.unindexable_count().unwrap(),
        0,
        "{:?}",
        store.unindexable().unwrap()
    );
    out
}

/// Every segment on disk is indexed with the duration the probe gives, and nothing else is.
fn assert_index_equals_disk(dir: &Path, streams: &[&str]) -> BTreeMap<String, Vec<Recording>> {
    let idx = index(dir);
    for s in streams {
        let on_disk: Vec<String> = files(dir, s)
            .into_iter()
            .filter(|n| {
                std::fs::metadata(dir.join("recordings").join(s).join(n))
                    .unwrap()
                    .len()
                    > 0
            })
            .collect();
        let indexed: Vec<String> = idx
            .get(*s)
            .map(|v| v.iter().map(|r| r.file_path()).collect())
            .unwrap_or_default();
        let want: Vec<String> = on_disk.iter().map(|n| format!("{s}/{n}")).collect();
        assert_eq!(indexed, want, "stream {s}");
        for r in idx.get(*s).into_iter().flatten() {
            let p = probe_file(&dir.join("recordings").join(r.file_path())).unwrap();
            assert_eq!(r.duration_us, p.duration_us, "{r:?}");
        }
    }
    idx
}

/// The largest hole between consecutive recordings, in seconds. File names have whole seconds,
/// so this is exact to about one second.
fn largest_gap_s(recs: &[Recording]) -> f64 {
    recs.windows(2)
        .map(|w| (w[1].start_ms * 1000 - w[0].end_us()) as f64 / 1e6)
        .fold(f64::MIN, f64::max)
}

fn stop(d: Daemon) {
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}

#[test]
fn several_streams_record_at_once_and_sigterm_finalizes_and_indexes_everything() {
    let server = RtspServer::start(&["cam1", "cam2", "cam3"]);
    let dir = TempDir::new("rec3");
    let cfg = write_config(
        dir.path(),
        &streams_toml(&server, &[("cam1", true), ("cam2", true), ("cam3", true)]),
    );
    let mut d = Daemon::start(&cfg);
    assert!(d.wait_log("running:", Duration::from_secs(20)).is_some());
    let all = ["cam1", "cam2", "cam3"];
    assert!(
        wait_for(Duration::from_secs(40), || all.iter().all(|s| files(
            dir.path(),
            s
        )
        .len()
            >= 4)),
        "every stream writes segments: {:?}",
        all.map(|s| files(dir.path(), s))
    );
    let children = ffmpeg_children(d.pid());
    assert_eq!(children.len(), 3, "one ffmpeg per stream");
    stop(d);
    for pid in children {
        assert!(!pid_alive(pid), "ffmpeg {pid} outlived the daemon");
    }
    let idx = assert_index_equals_disk(dir.path(), &all);
    for s in all {
        let recs = &idx[s];
        assert!(recs.len() >= 4);
        for r in recs {
            assert!(!r.truncated, "SIGINT lets ffmpeg finish every file: {r:?}");
            assert_eq!(r.video_codec.as_deref(), Some("h264"));
            assert_eq!(r.audio_codec.as_deref(), Some("aac"), "AAC is copied");
            assert_eq!((r.width, r.height), (320, 240));
        }
        assert!(
            largest_gap_s(recs) < 1.5,
            "{s}: a gap of {} s",
            largest_gap_s(recs)
        );
    }
}

#[test]
fn sigkill_leaves_no_ffmpeg_and_a_restart_indexes_everything_on_disk() {
    let server = RtspServer::start(&["k1", "k2"]);
    let dir = TempDir::new("reckill");
    let cfg = write_config(
        dir.path(),
        &streams_toml(&server, &[("k1", true), ("k2", true)]),
    );
    let mut d = Daemon::start(&cfg);
    assert!(d.wait_log("running:", Duration::from_secs(20)).is_some());
    assert!(wait_for(Duration::from_secs(30), || files(
        dir.path(),
        "k1"
    )
    .len()
        >= 2
        && files(dir.path(), "k2").len() >= 2));
    let children = ffmpeg_children(d.pid());
    assert_eq!(children.len(), 2);
    d.signal(Signal::SIGKILL);
    d.wait(Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(5), || children
            .iter()
            .all(|p| !pid_alive(*p))),
        "ffmpeg must die with the daemon (PR_SET_PDEATHSIG)"
    );

    // Restarted with both streams disabled, so the disk stays still while we compare.
    let cfg = write_config(
        dir.path(),
        &streams_toml(&server, &[("k1", false), ("k2", false)]),
    );
    let mut d = Daemon::start(&cfg);
    assert!(d.wait_log("backfill:", Duration::from_secs(20)).is_some());
    assert!(ffmpeg_children(d.pid()).is_empty());
    stop(d);
    let idx = assert_index_equals_disk(dir.path(), &["k1", "k2"]);
    assert!(idx["k1"].len() >= 2 && idx["k2"].len() >= 2);
}

#[test]
fn a_restarted_rtsp_server_is_recorded_again_and_the_only_gap_is_the_outage() {
    let mut server = RtspServer::start(&["door"]);
    let dir = TempDir::new("recrestart");
    let cfg = write_config(dir.path(), &streams_toml(&server, &[("door", true)]));
    let mut d = Daemon::start(&cfg);
    assert!(wait_for(Duration::from_secs(30), || files(
        dir.path(),
        "door"
    )
    .len()
        >= 2));
    let outage = Duration::from_secs(4);
    server.kill();
    std::thread::sleep(outage);
    let before = files(dir.path(), "door");
    server.restart();
    let back = Instant::now();
    assert!(
        wait_for(Duration::from_secs(40), || files(dir.path(), "door")
            .iter()
            .filter(|f| !before.contains(f))
            .count()
            >= 2),
        "recording resumes by itself"
    );
    let resumed_after = back.elapsed();
    assert!(
        d.wait_log("restarting in", Duration::from_secs(1))
            .is_some()
    );
    stop(d);
    let idx = assert_index_equals_disk(dir.path(), &["door"]);
    let gap = largest_gap_s(&idx["door"]);
    // The outage, plus the reconnection: the backoff ends as soon as the server is back.
    assert!(
        gap >= outage.as_secs_f64() - 1.5,
        "the outage shows as a gap: {gap} s"
    );
    assert!(
        gap <= outage.as_secs_f64() + 3.5,
        "a gap of {gap} s for an outage of {outage:?}"
    );
    eprintln!(
        "outage {outage:?}: gap {gap:.1} s, new segments {resumed_after:?} after the server came back"
    );
}

#[test]
fn a_frozen_rtsp_server_is_detected_and_recording_recovers_after_it_thaws() {
    let server = RtspServer::start(&["yard"]);
    let dir = TempDir::new("recstall");
    let cfg = write_config(dir.path(), &streams_toml(&server, &[("yard", true)]));
    let mut d = Daemon::start(&cfg);
    assert!(wait_for(Duration::from_secs(30), || files(
        dir.path(),
        "yard"
    )
    .len()
        >= 2));
    let pid_before = ffmpeg_children(d.pid());
    server.signal(Signal::SIGSTOP);
    let line = d
        .wait_log("restarting in", Duration::from_secs(40))
        .expect("the stall is detected");
    assert!(line.contains("yard:"), "{line}");
    assert!(
        pid_before.iter().all(|p| !pid_alive(*p)),
        "the stalled ffmpeg is replaced"
    );
    server.signal(Signal::SIGCONT);
    let thawed = files(dir.path(), "yard");
    assert!(
        wait_for(Duration::from_secs(60), || files(dir.path(), "yard")
            .iter()
            .filter(|f| !thawed.contains(f))
            .count()
            >= 2),
        "recording recovers after SIGCONT"
    );
    stop(d);
    let idx = assert_index_equals_disk(dir.path(), &["yard"]);
    assert!(idx["yard"].len() >= 4);
}

/// The pid of the ffmpeg recording `stream` (found by its output folder).
fn ffmpeg_of(daemon: u32, stream: &str) -> Option<u32> {
    ffmpeg_children(daemon)
        .into_iter()
        .find(|pid| common::cmdline(*pid).contains(&format!("/{stream}/%Y")))
}

#[test]
fn a_config_edit_adds_and_disables_streams_while_a_third_records_on_without_a_gap() {
    let server = RtspServer::start(&["steady", "leaving", "arriving"]);
    let dir = TempDir::new("recedit");
    let cfg = write_config(
        dir.path(),
        &streams_toml(&server, &[("steady", true), ("leaving", true)]),
    );
    let mut d = Daemon::start(&cfg);
    assert!(wait_for(Duration::from_secs(30), || files(
        dir.path(),
        "steady"
    )
    .len()
        >= 2
        && files(dir.path(), "leaving").len() >= 2));
    let steady = ffmpeg_of(d.pid(), "steady").expect("steady records");
    let leaving = ffmpeg_of(d.pid(), "leaving").expect("leaving records");

    // An invalid edit changes nothing.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "[[streams]]\nid = \"Bad Id\"\n",
    )
    .unwrap();
    assert!(
        d.wait_log("config reload refused", Duration::from_secs(10))
            .is_some()
    );
    assert_eq!(ffmpeg_of(d.pid(), "steady"), Some(steady));
    assert_eq!(ffmpeg_of(d.pid(), "leaving"), Some(leaving));

    // Saved by an editor: written elsewhere, renamed into place.
    let text = write_config(
        dir.path(),
        &streams_toml(
            &server,
            &[("steady", true), ("leaving", false), ("arriving", true)],
        ),
    );
    let staged = dir.path().join("config.toml.new");
    std::fs::rename(&text, &staged).unwrap();
    std::fs::rename(&staged, &cfg).unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || files(dir.path(), "arriving")
            .len()
            >= 2),
        "the added stream records"
    );
    assert!(!pid_alive(leaving), "the disabled stream's ffmpeg stopped");
    assert_eq!(
        ffmpeg_of(d.pid(), "steady"),
        Some(steady),
        "the untouched stream kept its ffmpeg"
    );
    let leaving_files = files(dir.path(), "leaving");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        files(dir.path(), "leaving"),
        leaving_files,
        "the disabled stream writes no more"
    );
    stop(d);
    let idx = assert_index_equals_disk(dir.path(), &["steady", "leaving", "arriving"]);
    let gap = largest_gap_s(&idx["steady"]);
    assert!(
        gap < 1.5,
        "steady recorded on without a gap, but has one of {gap} s"
    );
}

#[test]
fn audio_that_mp4_cannot_carry_is_converted_to_aac_in_auto_mode() {
    let server = RtspServer::start(&["door-pcma"]);
    let dir = TempDir::new("recpcma");
    let cfg = write_config(dir.path(), &streams_toml(&server, &[("door-pcma", true)]));
    let mut d = Daemon::start(&cfg);
    assert!(
        d.wait_log(
            "codec not currently supported in container",
            Duration::from_secs(20)
        )
        .is_some(),
        "copying A-law into MP4 fails first"
    );
    assert!(wait_for(Duration::from_secs(30), || files(
        dir.path(),
        "door-pcma"
    )
    .len()
        >= 3));
    let args = common::cmdline(ffmpeg_children(d.pid())[0]);
    assert!(
        args.contains("-c:v copy") && args.contains("-c:a aac"),
        "{args}"
    );
    stop(d);
    let idx = assert_index_equals_disk(dir.path(), &["door-pcma"]);
    for r in &idx["door-pcma"] {
        assert_eq!(r.audio_codec.as_deref(), Some("aac"), "{r:?}");
        assert_eq!(
            r.video_codec.as_deref(),
            Some("h264"),
            "video is still copied"
        );
    }
}

#[test]
fn crafted_files_in_a_stream_folder_are_listed_unindexable_while_recording_goes_on() {
    let server = RtspServer::start(&["cam1"]);
    let dir = TempDir::new("hostile-drop");
    // cam1 records; the disabled stream's folder receives the crafted files, half before the
    // start (for the backfill) and half while it runs (for inotify).
    let cfg = write_config(
        dir.path(),
        &streams_toml(&server, &[("cam1", true), ("dropbox", false)]),
    );
    let drop_dir = dir.path().join("recordings").join("dropbox");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let cases = hostile::cases();
    let t0 = parse_segment_name("2026-01-01_00-00-00.mp4").unwrap();
    let put = |i: usize| {
        let name = segment_name(t0 + i as i64 * 60_000);
        std::fs::write(drop_dir.join(name), &cases[i].2).unwrap();
    };
    let half = cases.len() / 2;
    (0..half).for_each(put);

    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    assert!(d.wait_log("running:", Duration::from_secs(20)).is_some());
    assert!(wait_for(Duration::from_secs(20), || files(
        dir.path(),
        "cam1"
    )
    .len()
        >= 2));
    (half..cases.len()).for_each(put);
    let bad = cases.iter().filter(|c| c.1 == Expect::Error).count();
    let health = || http(&addr, "GET", "/api/health", &[], b"").json();
    assert!(
        wait_for(
            Duration::from_secs(20),
            || health()["index"]["unindexable_files"] == bad
        ),
        "{} unindexable: {}",
        bad,
        health()
    );
    // The rest probe as the small valid file they are built on (or as a cut one).
    let listed = http(&addr, "GET", "/api/streams/dropbox/recordings", &[], b"").json();
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(cases.len() - bad),
        "{listed}"
    );
    assert!(
        health()["problems"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .contains(&format!("{bad} file(s) could not be indexed"))),
        "{}",
        health()
    );
    // Recording went on throughout, with the same ffmpeg.
    let ffmpeg = ffmpeg_children(d.pid());
    let n = files(dir.path(), "cam1").len();
    assert!(
        wait_for(Duration::from_secs(20), || files(dir.path(), "cam1").len()
            >= n + 2),
        "cam1 keeps recording"
    );
    assert_eq!(ffmpeg_children(d.pid()), ffmpeg);
    assert!(
        d.wait_log("cannot index dropbox/", Duration::from_secs(5))
            .is_some()
    );
    stop(d);
}
