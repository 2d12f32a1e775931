//! Logging in (an API key or JWT exchanged for a session) and out.

use std::net::SocketAddr;

use axum::{
    Form,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{CsrfForm, audit, base, check_write, over_tls, pages, same_origin, session, signed_in};
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
    let client = session::Client {
        ip: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|p| p.0.ip().to_string()),
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
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let base = base(&state);
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_write(
        &state,
        &headers,
        &session,
        &form.csrf,
        Role::Viewer,
        "console_logout",
    )
    .await
    {
        return r;
    }
    if let Err(e) = session::revoke(&state.pool, &session.id).await {
        tracing::error!(error = %e, "console session not revoked");
        return pages::error_page(
            &base,
            StatusCode::SERVICE_UNAVAILABLE,
            "The session could not be ended; try again.",
        );
    }
    audit(
        &state,
        &session.principal,
        "console_logout",
        Some(session.id.clone()),
        StatusCode::SEE_OTHER,
    )
    .await;
    let mut response = Redirect::to(&format!("{base}/login")).into_response();
    let cookie = session::set_cookie("", &base, over_tls(&state), std::time::Duration::ZERO);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}
