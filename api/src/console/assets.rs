//! The console's static files, compiled into the binary and served under
//! names that carry a hash of their content, so browsers may keep them for
//! a year (`immutable`) and a new build is never served a stale copy.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// The name pages link to: `<stem>.<hash>.<ext>`.
    pub name: String,
    content_type: &'static str,
    body: &'static [u8],
}

fn hashed(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
    let hash = Sha256::digest(body);
    let short: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        name: format!("{stem}.{short}.{ext}"),
        content_type,
        body,
    }
}

/// The stylesheet.
pub static CSS: LazyLock<Asset> = LazyLock::new(|| {
    hashed(
        "console",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/console.css"),
    )
});

/// The one script: live job state over server-sent events.
pub static JS: LazyLock<Asset> = LazyLock::new(|| {
    hashed(
        "console",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/console.js"),
    )
});

/// The icon browsers show in the tab.
pub static ICON: LazyLock<Asset> = LazyLock::new(|| {
    hashed(
        "favicon",
        "svg",
        "image/svg+xml",
        include_bytes!("../../console/favicon.svg"),
    )
});

/// `GET /ui/assets/{name}`: an embedded file by its hashed name.
pub async fn serve(Path(name): Path<String>) -> Response {
    for asset in [&*CSS, &*JS, &*ICON] {
        if asset.name == name {
            let mut response = (StatusCode::OK, asset.body).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            return response;
        }
    }
    (StatusCode::NOT_FOUND, "no such asset").into_response()
}
