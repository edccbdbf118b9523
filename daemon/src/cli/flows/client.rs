//! `netseg flows --daemon URL`: a question to a daemon's flow API (plain
//! HTTP, as it serves on localhost), answered one line at a time.

use anyhow::{Context as _, Result, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::flows::api;

/// The flow API's address for `pairs` (filters, `limit`, `follow`) on the
/// daemon at `base` (`http://127.0.0.1:9091`, or without the scheme).
pub fn flows_url<'a>(base: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let base = base.trim_end_matches('/');
    let scheme = if base.contains("://") { "" } else { "http://" };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(pairs);
    format!("{scheme}{base}{}?{}", api::PATH, query.finish())
}

/// GETs `url` and gives `each` every line of the answer as it comes.
pub async fn read_lines(url: &str, mut each: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("{url}: the flow API speaks plain http:// (it listens on localhost)");
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .get(uri)
        .await
        .with_context(|| format!("asking {url}"))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.collect().await.map(|body| body.to_bytes());
        let text = text.map_or_else(|error| error.to_string(), |text| lossy(&text));
        bail!("the daemon answered {status}: {}", text.trim_end());
    }
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("reading the answer of {url}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            each(&lossy(&line[..end]))?;
        }
    }
    if !pending.is_empty() {
        bail!("the answer of {url} ended within a line");
    }
    Ok(())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
