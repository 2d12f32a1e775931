//! Logging in (an API key or JWT exchanged for a session) and out.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    AuditedRequest, CsrfForm, WriteRequest, audit, base, client_ip, over_tls, pages, same_origin, session,
};
use crate::{auth::Role, state::AppState};

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    credential: String,
}

pub(super) async fn login_form(State(state): State<AppState>) -> Response {
    Html(pages::login(&base(&state), None).into_string()).into_response()
}

pub(super) async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let base = base(&state);
    let refuse = |status: StatusCode, message: &str| {
        (status, Html(pages::login(&base, Some(message)).into_string())).into_response()
    };
    // Login CSRF: a page elsewhere must not sign a browser in as someone else.
    if !same_origin(&state, &headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This form was not sent from this console (Origin check).",
        );
    }
    let credential = form.credential.trim();
    if credential.is_empty() {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "credential: paste an API key or a JWT.",
        );
    }
    let mut bearer = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {credential}")) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "credential: not a token (unexpected characters).",
        );
    };
    bearer.insert(header::AUTHORIZATION, value);
    let principal = match state.auth.authenticate(&bearer).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "credential: paste an API key or a JWT.",
            );
        }
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, &format!("credential: {e}")),
    };
    let request = AuditedRequest {
        path: uri.path(),
        client_ip: client_ip(&extensions),
    };
    let client = session::Client {
        ip: request.client_ip.clone(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let opened = match session::open(&state.pool, &state.config.api.console, &principal, &client).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "console session not opened");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "The session could not be stored; try again.",
            );
        }
    };
    audit(
        &state,
        &principal,
        "console_login",
        &request,
        Some(opened.session.id.clone()),
        StatusCode::SEE_OTHER,
    )
    .await;
    let cookie = session::set_cookie(
        &opened.token,
        &base,
        over_tls(&state),
        state.config.api.console.max_age,
    );
    let mut response = Redirect::to(&format!("{base}/")).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

pub(super) async fn logout(
    State(state): State<AppState>,
    write: WriteRequest,
    Form(form): Form<CsrfForm>,
) -> Response {
    const ACTION: &str = "console_logout";
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Viewer, ACTION).await {
        return r;
    }
    let base = base(&state);
    let id = &write.session.id;
    if let Err(e) = session::revoke(&state.pool, id).await {
        tracing::error!(error = %e, "console session not revoked");
        return pages::error_page(
            &base,
            StatusCode::SERVICE_UNAVAILABLE,
            "The session could not be ended; try again.",
        );
    }
    write
        .audit(&state, ACTION, Some(id.clone()), StatusCode::SEE_OTHER)
        .await;
    let mut response = Redirect::to(&format!("{base}/login")).into_response();
    let cookie = session::set_cookie("", &base, over_tls(&state), std::time::Duration::ZERO);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}
