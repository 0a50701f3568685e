//! Video: a served segment (with its `sidx`), stitched `playback.mp4`/`.json`, and `live.mp4`,
//! all with `Range`, `ETag` and `If-Range` where the size is known.

use super::*;

/// The layout served for a segment: a fragmented file gets a `sidx` per track between its
/// header and its fragments, so a browser knows the whole duration at once and can seek; the
/// media bytes are the file's own. Anything else is served as it is.
pub(super) fn segment_layout(path: &std::path::Path, len: u64) -> Layout {
    match media::fragments(path) {
        Ok(Some(f)) => {
            let end = f.content_end().min(len);
            Layout::new(
                vec![path.to_owned()],
                Vec::new(),
                vec![
                    Part::File {
                        file: 0,
                        offset: 0,
                        len: f.head_len,
                    },
                    Part::Mem(Bytes::from(f.sidx_boxes())),
                    Part::File {
                        file: 0,
                        offset: f.head_len,
                        len: end - f.head_len,
                    },
                ],
            )
        }
        _ => Layout::whole_file(path.to_owned(), len),
    }
}

/// A recording as served: `Range`, `If-Range`, `ETag`, `Last-Modified`, `HEAD`.
pub(super) async fn stream_file(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = id_param(&req)?;
    let (shared, dir) = (st.get_ref().clone(), st.recordings_dir());
    let (file, meta, layout) = blocking(move || {
        let rec = shared.store.get(id)?;
        let path = dir.join(rec.file_path());
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::not_found(format!("the file of recording {id} is gone"))
            }
            _ => Error::from(e).context(rec.file_path()),
        })?;
        let meta = file.metadata()?;
        let key = (id, meta.len(), meta.modified().ok());
        let layout = match shared.layouts.get(&key) {
            Some(l) => l,
            None => {
                let l = Arc::new(segment_layout(&path, meta.len()));
                shared
                    .layouts
                    .insert(key, l.clone(), l.heap_bytes(), |k| k.0 == id);
                l
            }
        };
        Ok((file, meta, layout))
    })
    .await?;
    let len = layout.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let etag = {
        use std::os::unix::fs::MetadataExt;
        format!(
            "\"{:x}-{:x}-{:x}-{len:x}\"",
            meta.ino(),
            meta.len(),
            mtime.as_nanos()
        )
    };
    let last_modified = http_date(mtime.as_secs() as i64);
    serve_layout(
        &req,
        layout,
        &etag,
        Some(&last_modified),
        Some(file),
        |_| (),
    )
}

/// Serves `layout` as `video/mp4` with `Range`, `If-Range` (against `etag` or
/// `last_modified`), `ETag` and `Accept-Ranges`.
pub(super) fn serve_layout(
    req: &HttpRequest,
    layout: Arc<Layout>,
    etag: &str,
    last_modified: Option<&str>,
    open: Option<std::fs::File>,
    more: impl FnOnce(&mut ntex::http::ResponseBuilder),
) -> Result<HttpResponse> {
    let len = layout.len();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let if_range_ok = match header("if-range") {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) => Some(v) == last_modified,
    };
    let ranged = if if_range_ok {
        range::parse(header("range"), len)
    } else {
        Ranged::Full
    };

    let mut resp = match ranged {
        Ranged::Unsatisfiable => {
            return Ok(HttpResponse::build(StatusCode::RANGE_NOT_SATISFIABLE)
                .header("content-range", format!("bytes */{len}"))
                .header("accept-ranges", "bytes")
                .json(
                    &json!({"error": format!("the range is outside the {len} bytes of the video")}),
                ));
        }
        Ranged::Full => HttpResponse::Ok(),
        Ranged::Part { start, end } => {
            let mut r = HttpResponse::build(StatusCode::PARTIAL_CONTENT);
            r.header("content-range", format!("bytes {start}-{end}/{len}"));
            r
        }
    };
    let (start, count) = match ranged {
        Ranged::Part { start, end } => (start, end - start + 1),
        _ => (0, len),
    };
    resp.content_type("video/mp4")
        .header("accept-ranges", "bytes")
        .header("etag", etag)
        .header("cache-control", "no-cache");
    if let Some(lm) = last_modified {
        resp.header("last-modified", lm);
    }
    more(&mut resp);
    let body = body::Body::new(layout, start, start + count, open);
    Ok(resp.body(Body::from_message(SizedStream::new(count, body))))
}

/// The fragments of a segment file, read once per version of the file.
pub(super) fn file_fragments(
    shared: &Shared,
    path: &std::path::Path,
) -> Result<Option<Arc<media::Fragments>>> {
    let meta = std::fs::metadata(path)?;
    let key = (path.to_owned(), meta.len(), meta.modified().ok());
    if let Some(f) = shared.fragments.get(&key) {
        return Ok(Some(f));
    }
    let Some(f) = media::fragments(path)? else {
        return Ok(None);
    };
    let f = Arc::new(f);
    shared
        .fragments
        .insert(key, f.clone(), f.heap_bytes(), |k| k.0.as_path() == path);
    Ok(Some(f))
}

/// The stitched playback of `stream` over `[start_us, end_us]`, reused while its files are
/// intact (see [`OPEN_PLAN_TTL`]).
pub(super) fn playback_plan(
    shared: &Shared,
    stream: &str,
    start_us: Option<i64>,
    end_us: Option<i64>,
) -> Result<Arc<stitch::Plan>> {
    let key = (stream.to_owned(), start_us, end_us);
    if let Some((plan, made)) = shared.plans.get(&key) {
        let open = end_us.is_none_or(|e| e > plan.end_us);
        let intact = plan
            .layout
            .files
            .iter()
            .zip(&plan.needs)
            .all(|(p, need)| std::fs::metadata(p).is_ok_and(|m| m.len() >= *need));
        if intact && (!open || made.elapsed() < OPEN_PLAN_TTL) {
            return Ok(plan);
        }
    }
    let dir = shared.recordings_dir();
    let recs = shared.store.overlapping(stream, start_us, end_us)?;
    let mut sources = Vec::with_capacity(recs.len() + 1);
    for r in &recs {
        let path = dir.join(r.file_path());
        match file_fragments(shared, &path) {
            Ok(Some(frags)) => sources.push(stitch::Source {
                recording_id: Some(r.id),
                start_ms: r.start_ms,
                path,
                frags,
            }),
            Ok(None) => log::debug!("playback: {} is not fragmented", r.file_path()),
            Err(e) => log::warn!("playback: {}: {e}", r.file_path()),
        }
    }
    let last = recs.last();
    if end_us.is_none_or(|e| last.is_none_or(|r| r.end_us() < e)) {
        let after = shared.store.newest(stream)?.map(|r| r.start_ms);
        // The newest file, when it is newer than the index: the segment being written, which
        // the index does not have until it is closed.
        if let Some((ms, path)) = live::newest_segment(&dir.join(stream))
            && after.is_none_or(|a| ms > a)
            && end_us.is_none_or(|e| ms * 1000 <= e)
            && let Ok(Some(frags)) = file_fragments(shared, &path)
        {
            sources.push(stitch::Source {
                recording_id: None,
                start_ms: ms,
                path,
                frags,
            });
        }
    }
    let plan = Arc::new(stitch::plan(&sources, start_us, end_us)?);
    if let Some(why) = &plan.cut_short {
        log::info!("playback of {stream}: ends early: {why}");
    }
    shared.plans.insert(
        key,
        (plan.clone(), std::time::Instant::now()),
        plan.heap_bytes(),
        |_| false,
    );
    Ok(plan)
}

/// The stream and `[start, end]` of a playback request.
pub(super) async fn playback_request(
    st: &State,
    req: &HttpRequest,
) -> Result<(Arc<stitch::Plan>, String, Vec<(String, String)>)> {
    let id = known_stream(st, req).await?;
    let q = query(req);
    let start = time_param(&q, &["start", "start_time"])?;
    let end = time_param(&q, &["end", "end_time"])?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(Error::bad_request("start is after end"));
    }
    let shared = st.get_ref().clone();
    let stream = id.clone();
    let plan = blocking(move || playback_plan(&shared, &stream, start, end)).await?;
    Ok((plan, id, q))
}

pub(super) async fn playback_mp4(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let (plan, id, q) = playback_request(&st, &req).await?;
    let download = matches!(param(&q, &["download"]), Some("1" | "true" | "yes"));
    let stamp = |us: i64| {
        let n = time::segment_name(us.div_euclid(1000));
        n.trim_end_matches(".mp4").to_owned()
    };
    let name = format!("{id}_{}_{}.mp4", stamp(plan.start_us), stamp(plan.end_us));
    let etag = plan.etag();
    let layout = plan.layout.clone();
    serve_layout(&req, layout, &etag, None, None, |r| {
        if download {
            r.header(
                "content-disposition",
                format!("attachment; filename=\"{name}\""),
            );
        }
    })
}

pub(super) async fn playback_json(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let (plan, _, _) = playback_request(&st, &req).await?;
    let spans: Vec<Value> = plan
        .spans
        .iter()
        .map(|s| {
            json!({
                "media_start_seconds": s.media_start_us as f64 / 1e6,
                "start_time": time::rfc3339_us(s.start_us),
                "end_time": time::rfc3339_us(s.end_us),
                "recording_id": s.recording_id,
            })
        })
        .collect();
    Ok(json_ok(&json!({
        "start_time": time::rfc3339_us(plan.start_us),
        "end_time": time::rfc3339_us(plan.end_us),
        "duration_seconds": plan.duration_us as f64 / 1e6,
        "spans": spans,
    })))
}

/// The live view: an endless fragmented MP4 tailing the segment being written.
pub(super) async fn live_mp4(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = known_stream(&st, &req).await?;
    let dir = st.recordings_dir().join(&id);
    let shared = st.get_ref().clone();
    let d = dir.clone();
    let changed = blocking(move || {
        if live::newest_segment(&d).is_none() {
            return Err(Error::not_found(format!(
                "stream {id:?} has not recorded anything yet"
            )));
        }
        shared.live_hub()?.subscribe(&id, &d)
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    ntex::rt::spawn(live::run(dir, changed, tx));
    Ok(HttpResponse::Ok()
        .content_type("video/mp4")
        .header("cache-control", "no-store")
        .streaming(Receiver(rx)))
}

/// A channel's receiving end as a response body.
pub(super) struct Receiver<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> ntex::util::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(super) fn http_date(unix_s: i64) -> String {
    jiff::Timestamp::from_second(unix_s).map_or_else(
        |_| String::new(),
        |t| t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
