//! What a camera sends, before it is saved (`POST /api/sources/probe`, admin), and a JPEG of a
//! stream's newest keyframe or of the keyframe at a time (`snapshot.jpg`, viewer). Both run
//! ffmpeg's tools through `recorder::tools`: bounded, at idle priority, with deadlines.

use std::time::Duration;

use super::*;
use crate::recorder::tools::{self, Source};

/// Snapshot widths accepted.
const WIDTHS: std::ops::RangeInclusive<u32> = 16..=1920;
/// How long a snapshot of "now" is served again; one of a past time is kept while cached.
const FRESH: Duration = Duration::from_secs(5);
/// How long the live bytes of a snapshot may take to come.
const LIVE_WAIT: Duration = Duration::from_secs(3);

pub(super) async fn probe_source(st: State, payload: web::types::Payload) -> Result<HttpResponse> {
    let body = read_body(payload).await?;
    let url = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => match m.get("url") {
            Some(Value::String(u)) => u.clone(),
            _ => {
                return Err(Error::bad_request(
                    "the body must be {\"url\": \"rtsp://…\"}",
                ));
            }
        },
        _ => {
            return Err(Error::bad_request(
                "the body must be {\"url\": \"rtsp://…\"}",
            ));
        }
    };
    // The same rule as the config: ffmpeg is only ever pointed at RTSP cameras.
    if let Err(why) = crate::config::check_stream_url(&url) {
        return Ok(json_ok(&json!({"ok": false, "error": why})));
    }
    let ffprobe = tools::ffprobe_for(&st.config().recording.ffmpeg_path);
    Ok(json_ok(&tools::probe_source(&ffprobe, &url).await))
}

/// The init segment and the fragments from the newest keyframe on, as a live viewer gets them.
async fn newest_keyframe(st: &State, id: &str) -> Result<Vec<u8>> {
    let dir = st.recordings_dir().join(id);
    let (shared, d, key) = (st.get_ref().clone(), dir.clone(), id.to_owned());
    let changed = blocking(move || {
        if live::newest_segment(&d).is_none() {
            return Err(Error::not_found(format!(
                "stream {key:?} has no footage yet"
            )));
        }
        shared.live_hub()?.subscribe(&key, &d)
    })
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    ntex::rt::spawn(live::run(dir, changed, tx));
    let mut bytes = Vec::new();
    let mut chunks = 0;
    let deadline = tokio::time::Instant::now() + LIVE_WAIT;
    while chunks < 2 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(b))) => {
                bytes.extend_from_slice(&b);
                chunks += 1;
            }
            _ => break,
        }
    }
    if chunks < 2 {
        return Err(Error::not_found(format!(
            "stream {id:?} is not writing a keyframe now"
        )));
    }
    Ok(bytes)
}

pub(super) async fn snapshot(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = known_stream(&st, &req).await?;
    let q = query(&req);
    let at_us = time_param(&q, &["time"])?;
    let width = match param(&q, &["width"]) {
        None => 640,
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|w| WIDTHS.contains(w))
            .ok_or_else(|| Error::bad_request(format!("width {w:?} is not from 16 to 1920")))?,
    };
    let key = (id.clone(), at_us, width);
    if let Some((jpeg, made)) = st.snapshots.get(&key)
        && (at_us.is_some() || made.elapsed() < FRESH)
    {
        return Ok(jpeg_response(jpeg));
    }
    let ffmpeg = st.config().recording.ffmpeg_path.clone();
    let jpeg = match at_us {
        None => match newest_keyframe(&st, &id).await {
            Ok(bytes) => tools::snapshot(&ffmpeg, Source::Bytes(bytes), width).await?,
            // Not writing now: the newest recording's last keyframe.
            Err(_) => recorded(&st, &id, None, &ffmpeg, width).await?,
        },
        Some(us) => recorded(&st, &id, Some(us.div_euclid(1000)), &ffmpeg, width).await?,
    };
    let jpeg = Bytes::from(jpeg);
    st.snapshots.insert(
        key,
        (jpeg.clone(), std::time::Instant::now()),
        jpeg.len(),
        |_| false,
    );
    Ok(jpeg_response(jpeg))
}

fn jpeg_response(jpeg: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/jpeg")
        .header("cache-control", "no-store")
        .body(jpeg)
}

/// A keyframe from the recording that holds `at_ms` (or the newest one), at or before it.
async fn recorded(
    st: &State,
    id: &str,
    at_ms: Option<i64>,
    ffmpeg: &str,
    width: u32,
) -> Result<Vec<u8>> {
    let (store, key) = (st.store.clone(), id.to_owned());
    let rec = blocking(move || match at_ms {
        None => store.newest(&key),
        Some(t) => Ok(store
            .overlapping(&key, Some(t * 1000), Some(t * 1000))?
            .into_iter()
            .rfind(|r| r.start_ms <= t)),
    })
    .await?
    .ok_or_else(|| Error::not_found(format!("no footage of {id:?} at that time")))?;
    let dur_s = rec.duration_us as f64 / 1e6;
    let offset_s = match at_ms {
        Some(t) => ((t - rec.start_ms) as f64 / 1e3).min(dur_s),
        None => (dur_s - 1.0).max(0.0),
    };
    let path = st.recordings_dir().join(rec.file_path());
    tools::snapshot(ffmpeg, Source::File(&path, offset_s), width).await
}
