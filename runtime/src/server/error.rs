//! Every 4xx of the decision API has the body `{"error": {"code", "message", "pointer"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// JSON pointer to the offending field, when there is one.
    pub(crate) pointer: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pointer: Option<&'a str>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            pointer: None,
        }
    }

    pub(crate) fn at(mut self, pointer: impl Into<String>) -> ApiError {
        self.pointer = Some(pointer.into());
        self
    }
}

impl ApiError {
    /// The JSON body, as every path that answers an error writes it.
    pub(crate) fn body(&self) -> Vec<u8> {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
                pointer: self.pointer.as_deref(),
            },
        };
        // Strings and an optional string: serializing cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.body(),
        )
            .into_response()
    }
}
