//! The indexer against real inotify on a real temp dir, with real segments made by ffmpeg.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{TempDir, corpus, record_segments, wait_for};
use wallflower_nvr::config::valid_stream_id;
use wallflower_nvr::index::indexer;
use wallflower_nvr::index::{Change, Recording, Store};
use wallflower_nvr::media::probe_file;
use wallflower_nvr::time::{parse_segment_name, segment_name};

fn segment_sources() -> Vec<&'static Path> {
    let files: Vec<&Path> = corpus()
        .iter()
        .filter(|f| f.file_name().unwrap().to_str().unwrap().starts_with("20"))
        .map(|f| f.as_path())
        .collect();
    assert!(files.len() >= 2, "the corpus has real segments");
    files
}

/// `(stream, start_ms)` → duration, as the store has it.
fn indexed(store: &Store) -> BTreeMap<(String, i64), u64> {
    store
        .all()
        .unwrap()
        .into_iter()
        .map(|r| ((r.stream_id, r.start_ms), r.duration_us))
        .collect()
}

/// The same map, from the files on disk and the probe.
fn on_disk(root: &Path) -> BTreeMap<(String, i64), u64> {
    let mut out = BTreeMap::new();
    for d in std::fs::read_dir(root).unwrap() {
        let d = d.unwrap();
        let stream = d.file_name().to_str().unwrap().to_owned();
        if !d.file_type().unwrap().is_dir() || !valid_stream_id(&stream) {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_str().unwrap().to_owned();
            let Some(ms) = parse_segment_name(&name) else {
                continue;
            };
            if f.metadata().unwrap().len() == 0 {
                continue;
            }
            if let Ok(p) = probe_file(&f.path()) {
                out.insert((stream.clone(), ms), p.duration_us);
            }
        }
    }
    out
}

#[test]
fn backfill_levels_the_index_with_the_disk() {
    let dir = TempDir::new("backfill");
    let root = dir.path().join("recordings");
    let srcs = segment_sources();
    let t0 = parse_segment_name("2026-01-01_00-00-00.mp4").unwrap();
    for (stream, n) in [("cam1", 5), ("cam-2", 3)] {
        std::fs::create_dir_all(root.join(stream)).unwrap();
        for i in 0..n {
            let dst = root.join(stream).join(segment_name(t0 + i * 60_000));
            std::fs::copy(srcs[i as usize % srcs.len()], dst).unwrap();
        }
    }
    std::fs::write(
        root.join("cam1").join("2026-01-02_00-00-00.mp4"),
        b"not a video at all, just junk",
    )
    .unwrap();
    std::fs::write(root.join("cam1").join("clip.mp4"), b"junk").unwrap();
    std::fs::write(root.join("cam1").join("2026-01-03_00-00-00.mp4"), b"").unwrap();
    std::fs::write(root.join("cam1").join("notes.txt"), b"ignored").unwrap();
    std::fs::create_dir_all(root.join("Not A Stream")).unwrap();
    std::fs::copy(srcs[0], root.join("Not A Stream").join(segment_name(t0))).unwrap();

    let store = Store::open(&dir.path().join("index.redb")).unwrap();
    let ghost = Recording {
        id: 0,
        stream_id: "cam1".into(),
        start_ms: t0 - 3_600_000,
        duration_us: 1,
        file_size_bytes: 1,
        mtime_ms: 0,
        retention_locked: false,
        truncated: false,
        video_codec: None,
        width: 0,
        height: 0,
        audio_codec: None,
    };
    store.apply(&[Change::Upsert(ghost)]).unwrap();

    let r = indexer::backfill(&store, &root).unwrap();
    assert_eq!(
        (r.files, r.probed, r.indexed, r.unindexable, r.removed),
        (10, 10, 8, 2, 1),
        "{r:?}"
    );
    assert_eq!(indexed(&store), on_disk(&root));
    assert_eq!(indexed(&store).len(), 8);
    let bad: Vec<String> = store
        .unindexable()
        .unwrap()
        .into_iter()
        .map(|u| u.file_path)
        .collect();
    assert_eq!(bad, ["cam1/2026-01-02_00-00-00.mp4", "cam1/clip.mp4"]);

    // Nothing changed: nothing is probed again.
    let r = indexer::backfill(&store, &root).unwrap();
    assert_eq!((r.probed, r.removed), (0, 0), "{r:?}");

    // A changed file is probed again and keeps its id; a read-only file is locked; a removed
    // junk file leaves the unindexable list.
    let first = root.join("cam1").join(segment_name(t0));
    let id = store.get_by_key("cam1", t0).unwrap().unwrap().id;
    std::fs::copy(srcs[1], &first).unwrap();
    let second = root.join("cam1").join(segment_name(t0 + 60_000));
    std::fs::set_permissions(&second, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::remove_file(root.join("cam1").join("clip.mp4")).unwrap();
    let r = indexer::backfill(&store, &root).unwrap();
    assert_eq!(r.probed, 2, "{r:?}");
    let rec = store.get_by_key("cam1", t0).unwrap().unwrap();
    assert_eq!(rec.id, id);
    assert_eq!(rec.duration_us, probe_file(srcs[1]).unwrap().duration_us);
    assert!(
        store
            .get_by_key("cam1", t0 + 60_000)
            .unwrap()
            .unwrap()
            .retention_locked
    );
    assert_eq!(store.unindexable().unwrap().len(), 1);
}

#[test]
fn inotify_indexes_closed_files_new_folders_renames_and_deletions() {
    let dir = TempDir::new("inotify");
    let root = dir.path().join("recordings");
    let store = Arc::new(Store::open(&dir.path().join("index.redb")).unwrap());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let beat = wallflower_nvr::daemon::watchdog::Heartbeat::new("indexer");
    let stopper = indexer::spawn(
        store.clone(),
        root.clone(),
        move |r| ready_tx.send(r.clone()).unwrap(),
        beat,
    )
    .unwrap();
    let first = ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first.files, 0);

    // A stream folder created after the watcher started, filled by ffmpeg in real time.
    let files = record_segments(&root.join("cam"), 5.0, 2, true, true);
    assert!(files.len() >= 2, "{files:?}");
    assert!(
        wait_for(Duration::from_secs(10), || indexed(&store)
            == on_disk(&root)),
        "index {:?} != disk {:?}",
        indexed(&store),
        on_disk(&root)
    );
    assert_eq!(indexed(&store).len(), files.len());

    // Deleted by hand: the record goes.
    std::fs::remove_file(&files[0]).unwrap();
    let gone = parse_segment_name(files[0].file_name().unwrap().to_str().unwrap()).unwrap();
    assert!(wait_for(Duration::from_secs(10), || store
        .get_by_key("cam", gone)
        .unwrap()
        .is_none()));

    // Written again (a second close of the same file): the record is updated, not duplicated.
    let again = &files[1];
    let start = parse_segment_name(again.file_name().unwrap().to_str().unwrap()).unwrap();
    let before = store.get_by_key("cam", start).unwrap().unwrap();
    let other = segment_sources()
        .into_iter()
        .find(|s| probe_file(s).unwrap().duration_us != before.duration_us)
        .unwrap();
    std::fs::copy(other, again).unwrap();
    let want = probe_file(other).unwrap().duration_us;
    assert!(wait_for(Duration::from_secs(10), || store
        .get_by_key("cam", start)
        .unwrap()
        .unwrap()
        .duration_us
        == want));
    assert_eq!(
        store.get_by_key("cam", start).unwrap().unwrap().id,
        before.id
    );
    assert_eq!(store.count().unwrap() as usize, files.len() - 1);

    // Renamed into place from elsewhere (IN_MOVED_TO), into a second stream folder.
    std::fs::create_dir_all(root.join("yard")).unwrap();
    let staged = dir.path().join("staged.mp4");
    std::fs::copy(other, &staged).unwrap();
    let moved = root.join("yard").join("2026-02-03_04-05-06.mp4");
    std::thread::sleep(Duration::from_millis(200));
    std::fs::rename(&staged, &moved).unwrap();
    let ms = parse_segment_name("2026-02-03_04-05-06.mp4").unwrap();
    assert!(wait_for(Duration::from_secs(10), || store
        .get_by_key("yard", ms)
        .unwrap()
        .is_some()));

    // A file that cannot be indexed is listed, and leaves the list once deleted.
    let junk = root.join("yard").join("2026-02-03_05-00-00.mp4");
    std::fs::write(&junk, b"\0\0\0\x10ftypjunkjunk").unwrap();
    assert!(wait_for(Duration::from_secs(10), || store
        .unindexable()
        .unwrap()
        .len()
        == 1));
    std::fs::remove_file(&junk).unwrap();
    assert!(wait_for(Duration::from_secs(10), || store
        .unindexable()
        .unwrap()
        .is_empty()));

    stopper.stop();
    assert_eq!(indexed(&store), on_disk(&root));
}
