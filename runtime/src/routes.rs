//! Route tables: which action on which DAG (and host) a proxied HTTP call is. A built-in
//! preset covers Airflow 3's REST API; deployments add or replace routes in their
//! configuration.

use serde_json::Value;

/// Where the host of a call comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSource {
    None,
    /// A request header, such as `X-Target-Host`.
    Header(String),
    /// A JSON pointer into the body, such as `/conf/target_host` of a trigger.
    BodyPointer(String),
    /// One host for the whole deployment.
    Fixed(String),
}

/// The action of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    Named(String),
    /// `PATCH /dags/{dag_id}`: `pause` or `unpause` by the body's `is_paused` when the body
    /// is available, otherwise `edit`.
    PauseByBody,
}

/// Where a route finds its DAG ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DagSource {
    /// A `{name}` segment of the path.
    Path(String),
    /// A JSON pointer into the body: a string, or an array of strings (decided per DAG).
    Body(String),
    /// The route concerns no DAG.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, …, or `*` for any method.
    pub method: String,
    /// Segments; `{name}` captures one segment, a final `**` any rest.
    pub path: Vec<String>,
    pub action: RouteAction,
    pub dags: DagSource,
}

impl Route {
    pub fn new(method: &str, template: &str, action: RouteAction, dags: DagSource) -> Route {
        Route {
            method: method.to_ascii_uppercase(),
            path: template
                .trim_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect(),
            action,
            dags,
        }
    }

    fn matches<'a>(&self, method: &str, segments: &[&'a str]) -> Option<Vec<(&str, &'a str)>> {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let mut captures = Vec::new();
        let mut remaining = segments;
        for (index, part) in self.path.iter().enumerate() {
            if part == "**" && index + 1 == self.path.len() {
                return Some(captures);
            }
            let (segment, rest) = remaining.split_first()?;
            match part
                .strip_prefix('{')
                .and_then(|name| name.strip_suffix('}'))
            {
                Some(name) => captures.push((name, *segment)),
                None if part == segment => {}
                None => return None,
            }
            remaining = rest;
        }
        remaining.is_empty().then_some(captures)
    }
}

/// The first matching route wins, so specific routes come before general ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub routes: Vec<Route>,
    pub host: HostSource,
}

/// What a call is, in the policy's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub action: String,
    /// One decision per DAG; empty when the route concerns no DAG.
    pub dags: Vec<String>,
    pub host: Option<String>,
}

/// Why a call cannot be mapped; the caller denies with this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no route matches {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{method} {path} names its DAGs only in the request body, which was not forwarded")]
    BodyNeeded { method: String, path: String },
    #[error("the request body has no DAG id at `{pointer}`")]
    NoDagInBody { pointer: String },
    #[error("the host was expected at `{source_name}` and is missing")]
    NoHost { source_name: String },
}

impl RouteTable {
    /// Airflow 3's REST API (`/api/v2`).
    pub fn airflow() -> RouteTable {
        let path = |name: &str| DagSource::Path(name.to_owned());
        let named = |action: &str| RouteAction::Named(action.to_owned());
        RouteTable {
            routes: vec![
                Route::new(
                    "POST",
                    "/api/v2/dags/{dag_id}/dagRuns",
                    named("trigger"),
                    path("dag_id"),
                ),
                Route::new(
                    "POST",
                    "/api/v2/dags/{dag_id}/clearTaskInstances",
                    named("clear"),
                    path("dag_id"),
                ),
                Route::new(
                    "POST",
                    "/api/v2/dags/{dag_id}/dagRuns/{run_id}/clear",
                    named("clear"),
                    path("dag_id"),
                ),
                Route::new(
                    "PATCH",
                    "/api/v2/dags/{dag_id}",
                    RouteAction::PauseByBody,
                    path("dag_id"),
                ),
                Route::new(
                    "DELETE",
                    "/api/v2/dags/{dag_id}",
                    named("delete"),
                    path("dag_id"),
                ),
                Route::new(
                    "GET",
                    "/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                    named("view_logs"),
                    path("dag_id"),
                ),
                Route::new(
                    "GET",
                    "/api/v2/dags/{dag_id}/**",
                    named("view"),
                    path("dag_id"),
                ),
                Route::new(
                    "GET",
                    "/api/v2/dags/{dag_id}",
                    named("view"),
                    path("dag_id"),
                ),
                Route::new(
                    "POST",
                    "/api/v2/backfills",
                    named("trigger"),
                    DagSource::Body(String::from("/dag_id")),
                ),
                Route::new(
                    "PATCH",
                    "/api/v2/dags",
                    RouteAction::PauseByBody,
                    DagSource::Body(String::from("/dag_ids")),
                ),
                Route::new(
                    "POST",
                    "/api/v2/dags/clearTaskInstances",
                    named("clear"),
                    DagSource::Body(String::from("/dag_ids")),
                ),
            ],
            host: HostSource::None,
        }
    }

    /// Maps a call. `body` is `None` when the proxy did not forward it; `header` looks up
    /// a request header by name.
    pub fn map(
        &self,
        method: &str,
        uri: &str,
        body: Option<&Value>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<Mapped, RouteError> {
        let path = uri.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (route, captures) = self
            .routes
            .iter()
            .find_map(|route| {
                route
                    .matches(method, &segments)
                    .map(|captures| (route, captures))
            })
            .ok_or_else(|| RouteError::NoRoute {
                method: method.to_owned(),
                path: path.to_owned(),
            })?;
        let dags = match &route.dags {
            DagSource::None => Vec::new(),
            DagSource::Path(name) => captures
                .iter()
                .filter(|(capture, _)| capture == name)
                .map(|(_, value)| percent_decode(value))
                .collect(),
            DagSource::Body(pointer) => {
                let body = body.ok_or_else(|| RouteError::BodyNeeded {
                    method: method.to_owned(),
                    path: path.to_owned(),
                })?;
                match body.pointer(pointer) {
                    Some(Value::String(id)) => vec![id.clone()],
                    Some(Value::Array(items))
                        if !items.is_empty() && items.iter().all(Value::is_string) =>
                    {
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    }
                    _ => {
                        return Err(RouteError::NoDagInBody {
                            pointer: pointer.clone(),
                        });
                    }
                }
            }
        };
        let action = match &route.action {
            RouteAction::Named(action) => action.clone(),
            RouteAction::PauseByBody => match body
                .and_then(|body| body.get("is_paused"))
                .and_then(Value::as_bool)
            {
                Some(true) => String::from("pause"),
                Some(false) => String::from("unpause"),
                None => String::from("edit"),
            },
        };
        let host = match &self.host {
            HostSource::None => None,
            HostSource::Fixed(host) => Some(host.clone()),
            HostSource::Header(name) => Some(header(name).ok_or_else(|| RouteError::NoHost {
                source_name: format!("header {name}"),
            })?),
            HostSource::BodyPointer(pointer) => Some(
                body.and_then(|body| body.pointer(pointer))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| RouteError::NoHost {
                        source_name: format!("body {pointer}"),
                    })?,
            ),
        };
        Ok(Mapped { action, dags, host })
    }
}

/// Decodes `%xx` escapes in a path segment; DAG ids may contain characters proxies escape.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let decoded = (byte == b'%')
            .then(|| segment.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(value) => {
                out.push(value);
                index += 3;
            }
            None => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests fail loudly by design"
    )]

    use super::*;
    use serde_json::json;

    fn map(method: &str, uri: &str, body: Option<Value>) -> Result<Mapped, RouteError> {
        RouteTable::airflow().map(method, uri, body.as_ref(), |_| None)
    }

    #[test]
    fn airflow_preset_maps_the_rest_api() {
        let trigger = map("POST", "/api/v2/dags/etl_daily/dagRuns", None).unwrap();
        assert_eq!(
            (trigger.action.as_str(), trigger.dags.as_slice()),
            ("trigger", [String::from("etl_daily")].as_slice())
        );
        assert_eq!(
            map("POST", "/api/v2/dags/etl_daily/clearTaskInstances", None)
                .unwrap()
                .action,
            "clear"
        );
        assert_eq!(
            map("POST", "/api/v2/dags/etl_daily/dagRuns/run_1/clear", None)
                .unwrap()
                .action,
            "clear"
        );
        assert_eq!(
            map(
                "PATCH",
                "/api/v2/dags/etl_daily",
                Some(json!({"is_paused": true}))
            )
            .unwrap()
            .action,
            "pause"
        );
        assert_eq!(
            map(
                "PATCH",
                "/api/v2/dags/etl_daily",
                Some(json!({"is_paused": false}))
            )
            .unwrap()
            .action,
            "unpause"
        );
        assert_eq!(
            map("PATCH", "/api/v2/dags/etl_daily", None).unwrap().action,
            "edit"
        );
        assert_eq!(
            map("DELETE", "/api/v2/dags/etl_daily", None)
                .unwrap()
                .action,
            "delete"
        );
        assert_eq!(
            map(
                "GET",
                "/api/v2/dags/etl_daily/dagRuns/r1/taskInstances/load/logs/2?full_content=true",
                None
            )
            .unwrap()
            .action,
            "view_logs"
        );
        assert_eq!(
            map("GET", "/api/v2/dags/etl_daily/dagRuns", None)
                .unwrap()
                .action,
            "view"
        );
        assert_eq!(
            map("GET", "/api/v2/dags/etl%2Fdaily", None).unwrap().dags,
            ["etl/daily"]
        );
    }

    #[test]
    fn body_only_routes_need_the_body() {
        let bulk = map(
            "PATCH",
            "/api/v2/dags",
            Some(json!({"dag_ids": ["a", "b"], "is_paused": true})),
        )
        .unwrap();
        assert_eq!((bulk.action.as_str(), bulk.dags.len()), ("pause", 2));
        assert_eq!(
            map(
                "POST",
                "/api/v2/backfills",
                Some(json!({"dag_id": "etl_daily"}))
            )
            .unwrap()
            .dags,
            ["etl_daily"]
        );
        assert!(matches!(
            map("POST", "/api/v2/backfills", None),
            Err(RouteError::BodyNeeded { .. })
        ));
        assert!(matches!(
            map("POST", "/api/v2/backfills", Some(json!({}))),
            Err(RouteError::NoDagInBody { .. })
        ));
        assert!(matches!(
            map("POST", "/api/v2/variables", None),
            Err(RouteError::NoRoute { .. })
        ));
    }

    #[test]
    fn hosts_come_from_the_configured_source() {
        let mut table = RouteTable::airflow();
        table.host = HostSource::BodyPointer(String::from("/conf/target_host"));
        let mapped = table
            .map(
                "POST",
                "/api/v2/dags/d/dagRuns",
                Some(&json!({"conf": {"target_host": "prod-sql-01"}})),
                |_| None,
            )
            .unwrap();
        assert_eq!(mapped.host.as_deref(), Some("prod-sql-01"));
        table.host = HostSource::Header(String::from("X-Target-Host"));
        let mapped = table
            .map("GET", "/api/v2/dags/d", None, |name| {
                (name == "X-Target-Host").then(|| String::from("stg-1"))
            })
            .unwrap();
        assert_eq!(mapped.host.as_deref(), Some("stg-1"));
        assert!(matches!(
            table.map("GET", "/api/v2/dags/d", None, |_| None),
            Err(RouteError::NoHost { .. })
        ));
    }
}
