//! The native probe against real files made by Debian's ffmpeg, checked against ffprobe.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{TempDir, corpus, ffprobe_duration, top_level_boxes};
use wallflower_nvr::media::probe_file;

fn assert_ms_equal(path: &Path, ours_us: u64, theirs_s: f64) {
    let diff_s = (ours_us as f64 / 1e6 - theirs_s).abs();
    assert!(
        diff_s < 0.0005,
        "{}: probe says {} s, ffprobe says {theirs_s} s",
        path.display(),
        ours_us as f64 / 1e6
    );
}

#[test]
fn durations_match_ffprobe_on_the_whole_corpus() {
    let files = corpus();
    assert!(files.len() >= 12, "corpus: {files:?}");
    for f in files {
        let p = probe_file(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let theirs = ffprobe_duration(f).unwrap();
        assert_ms_equal(f, p.duration_us, theirs);
        assert!(!p.truncated, "{}", f.display());
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(p.fragmented, !name.starts_with("plain"), "{name}");
        assert_eq!((p.width, p.height), (320, 240), "{name}");
        let want_video = if name.contains("hevc") {
            "hevc"
        } else {
            "h264"
        };
        assert_eq!(p.video_codec.as_deref(), Some(want_video), "{name}");
        let want_audio = if name.contains("mp3") {
            Some("mp3")
        } else if name.contains("opus") {
            Some("opus")
        } else if name.contains("aac") || name.starts_with("20") {
            Some("aac")
        } else {
            None
        };
        assert_eq!(p.audio_codec.as_deref(), want_audio, "{name}");
    }
}

/// Cuts `src` to `len` bytes into `dir`.
fn cut(src: &Path, dir: &Path, len: u64) -> std::path::PathBuf {
    let data = std::fs::read(src).unwrap();
    let out = dir.join(format!(
        "cut-{len}-{}",
        src.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::File::create(&out)
        .unwrap()
        .write_all(&data[..len as usize])
        .unwrap();
    out
}

#[test]
fn a_fragmented_file_cut_anywhere_gives_its_complete_fragments() {
    let dir = TempDir::new("cut");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for src in corpus()
        .iter()
        .filter(|f| probe_file(f).unwrap().fragmented)
    {
        let len = std::fs::metadata(src).unwrap().len();
        let boxes = top_level_boxes(src);
        // Where the complete fragments end: the start of each moof, and the start of mfra.
        let boundaries: Vec<u64> = boxes
            .iter()
            .filter(|(_, k, _)| k == b"moof" || k == b"mfra")
            .map(|(at, _, _)| *at)
            .collect();
        let first_moof = boundaries[0];
        for _ in 0..12 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = first_moof + rng % (len - first_moof);
            let boundary = *boundaries.iter().filter(|b| **b <= at).max().unwrap();
            let cut_file = cut(src, dir.path(), at);
            let p = probe_file(&cut_file)
                .unwrap_or_else(|e| panic!("{} cut at {at}: {e}", src.display()));
            assert_eq!(p.truncated, at != boundary, "{} cut at {at}", src.display());
            // The same file cut cleanly after its last complete fragment: ffprobe's answer.
            let clean = cut(src, dir.path(), boundary);
            assert_ms_equal(
                &cut_file,
                p.duration_us,
                ffprobe_duration(&clean).unwrap_or(0.0),
            );
            std::fs::remove_file(cut_file).unwrap();
            std::fs::remove_file(clean).unwrap();
        }
    }
}

#[test]
fn the_mfra_shortcut_agrees_with_walking_every_fragment() {
    let dir = TempDir::new("mfra");
    let mut with_mfra = 0;
    for src in corpus() {
        let Some((mfra_at, _, _)) = top_level_boxes(src)
            .into_iter()
            .find(|(_, k, _)| k == b"mfra")
        else {
            continue;
        };
        with_mfra += 1;
        let fast = probe_file(src).unwrap();
        let walked = probe_file(&cut(src, dir.path(), mfra_at)).unwrap();
        assert_eq!(fast, walked, "{}", src.display());
    }
    assert!(
        with_mfra >= 5,
        "ffmpeg writes mfra into finished fragmented files"
    );
}

#[test]
fn a_file_cut_before_its_moov_is_a_clear_error() {
    let dir = TempDir::new("cutmoov");
    let src = corpus()
        .iter()
        .find(|f| f.ends_with("plain_h264_aac.mp4"))
        .unwrap();
    let moov = top_level_boxes(src)
        .into_iter()
        .find(|(_, k, _)| k == b"moov")
        .unwrap();
    for len in [1, 7, 8, 40, moov.0 + 3, moov.0 + moov.2 - 1] {
        let f = cut(src, dir.path(), len);
        let e = probe_file(&f).unwrap_err();
        assert!(
            e.msg.contains("moov") || e.msg.contains("not an MP4"),
            "cut at {len}: {e}"
        );
    }
}

#[test]
fn probe_command_prints_json_lines_and_fails_for_unreadable_files() {
    let dir = TempDir::new("probecmd");
    let seg = corpus()
        .iter()
        .find(|f| f.file_name().unwrap().to_str().unwrap().starts_with("20"))
        .unwrap();
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"garbage garbage garbage").unwrap();
    let out = Command::new(common::bin())
        .arg("probe")
        .arg(seg)
        .arg(&junk)
        .arg(dir.path().join("missing.mp4"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let first = &lines[0];
    let name = seg.file_name().unwrap().to_str().unwrap();
    let want_start = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &name[0..4],
        &name[5..7],
        &name[8..10],
        &name[11..13],
        &name[14..16],
        &name[17..19]
    );
    assert_eq!(first["start_time"], want_start.as_str());
    assert_eq!(first["fragmented"], true);
    assert_eq!(first["truncated"], false);
    assert_eq!(first["video_codec"], "h264");
    assert_eq!(first["audio_codec"], "aac");
    assert_eq!(first["width"], 320);
    assert_eq!(first["height"], 240);
    let d = first["duration_seconds"].as_f64().unwrap();
    assert!((d - ffprobe_duration(seg).unwrap()).abs() < 0.0005);
    for l in &lines[1..] {
        assert!(l["error"].as_str().is_some_and(|e| !e.is_empty()), "{l}");
        assert!(l.get("duration_seconds").is_none());
    }
}
