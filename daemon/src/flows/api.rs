//! The flow API, on its own listener (`--flow-api-addr`, localhost unless
//! told otherwise: records name pods and their traffic).
//!
//! `GET /api/v1/flows?<filters>&limit=N` answers with the most recent
//! records that match (at most `limit`, default 100), oldest first, one JSON
//! line each (NDJSON). With `&follow=true` the response then stays open and
//! carries each new matching record as it is written; a follower that falls
//! behind gets a line `{"lost":N}` saying how many records it missed. The
//! filters are those of [`FlowFilter`]; a bad one is a 400 naming it.

use std::{convert::Infallible, io, net::SocketAddr, sync::Arc, time::SystemTime};

use axum::{
    Router,
    body::Body,
    extract::{RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::StreamExt;

use super::{
    FlowRecord,
    query::{FilterError, FlowFilter},
    recent::{Followed, Follower, RecentFlows},
};

/// Records answered when the query gives no `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// Where the flow API is.
pub const PATH: &str = "/api/v1/flows";

const NDJSON: &str = "application/x-ndjson";

/// Serves the flow API on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr, recent: Arc<RecentFlows>) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| io::Error::new(error.kind(), format!("listening on {addr}: {error}")))?;
    serve_on(listener, recent).await
}

/// Serves the flow API on a bound listener.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    recent: Arc<RecentFlows>,
) -> io::Result<()> {
    let app = Router::new().route(PATH, get(flows)).with_state(recent);
    axum::serve(listener, app).await
}

#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("{name}={value:?}: {why}")]
    Parameter {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

/// One question to the flow API.
struct FlowsRequest {
    filter: FlowFilter,
    limit: usize,
    follow: bool,
}

impl FlowsRequest {
    fn parse(query: &str, now: SystemTime) -> Result<Self, RequestError> {
        let mut limit = DEFAULT_LIMIT;
        let mut follow = false;
        let mut filters = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let bad = |name, why| RequestError::Parameter {
                name,
                value: value.to_string(),
                why,
            };
            match &*name {
                "limit" => limit = value.parse().map_err(|_| bad("limit", "not a number"))?,
                "follow" => {
                    follow = value
                        .parse()
                        .map_err(|_| bad("follow", "expected true or false"))?
                }
                _ => filters.push((name, value)),
            }
        }
        Ok(Self {
            filter: FlowFilter::parse(filters, now)?,
            limit,
            follow,
        })
    }

    /// The last `limit` lines of `held` that match, oldest first, each
    /// ending in a newline.
    fn latest(&self, held: &[Arc<str>]) -> String {
        let mut latest: Vec<&str> = held
            .iter()
            .rev()
            .filter(|line| self.selects(line))
            .take(self.limit)
            .map(|line| &**line)
            .collect();
        latest.reverse();
        latest.iter().map(|line| format!("{line}\n")).collect()
    }

    /// Without filters, a line goes unread.
    fn selects(&self, line: &str) -> bool {
        self.filter.is_empty()
            || FlowRecord::parse(line).is_ok_and(|record| self.filter.matches(&record))
    }
}

async fn flows(State(recent): State<Arc<RecentFlows>>, RawQuery(query): RawQuery) -> Response {
    let request = match FlowsRequest::parse(query.as_deref().unwrap_or(""), SystemTime::now()) {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    };
    if !request.follow {
        let latest = request.latest(&recent.lines());
        return ([(header::CONTENT_TYPE, NDJSON)], latest).into_response();
    }
    let (held, follower) = recent.follow();
    let latest = request.latest(&held);
    let first = futures::stream::iter((!latest.is_empty()).then_some(latest));
    let stream = first.chain(following(request, follower));
    let body = Body::from_stream(stream.map(Ok::<_, Infallible>));
    ([(header::CONTENT_TYPE, NDJSON)], body).into_response()
}

/// Each new matching line, and a `{"lost":N}` line when lines were lost.
fn following(
    request: FlowsRequest,
    follower: Follower,
) -> impl futures::Stream<Item = String> + Send {
    futures::stream::unfold((request, follower), |(request, mut follower)| async move {
        loop {
            let chunk = match follower.next().await? {
                Followed::Line(line) if request.selects(&line) => format!("{line}\n"),
                Followed::Line(_) => continue,
                Followed::Lost(lost) => format!("{{\"lost\":{lost}}}\n"),
            };
            return Some((chunk, (request, follower)));
        }
    })
}

#[cfg(test)]
mod tests;
