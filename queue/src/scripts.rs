//! The Lua scripts, each prefixed with the shared prelude, loaded once per process.
//!
//! `redis::Script` sends EVALSHA and falls back to loading the script when the
//! server does not know it (after a restart), so scripts survive Redis restarts.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/prelude.lua"),
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

pub(crate) static ENQUEUE: LazyLock<Script> = script!("enqueue.lua");
pub(crate) static FETCH: LazyLock<Script> = script!("fetch.lua");
pub(crate) static FINISH: LazyLock<Script> = script!("finish.lua");
pub(crate) static RENEW: LazyLock<Script> = script!("renew.lua");
pub(crate) static REAP: LazyLock<Script> = script!("reap.lua");
pub(crate) static PROMOTE: LazyLock<Script> = script!("promote.lua");
pub(crate) static CANCEL: LazyLock<Script> = script!("cancel.lua");
pub(crate) static REQUEUE_DEAD: LazyLock<Script> = script!("requeue_dead.lua");
pub(crate) static DELETE_DEAD: LazyLock<Script> = script!("delete_dead.lua");
pub(crate) static TRIM: LazyLock<Script> = script!("trim.lua");
pub(crate) static RELEASE: LazyLock<Script> = script!("release.lua");
pub(crate) static PROGRESS: LazyLock<Script> = script!("progress.lua");
pub(crate) static RELEASE_CLAIM: LazyLock<Script> = script!("release_claim.lua");

/// The script's name (its file's, without `.lua`), for trace spans.
pub(crate) fn name(script: &Script) -> &'static str {
    let all: [(&'static str, &LazyLock<Script>); 13] = [
        ("enqueue", &ENQUEUE),
        ("fetch", &FETCH),
        ("finish", &FINISH),
        ("renew", &RENEW),
        ("reap", &REAP),
        ("promote", &PROMOTE),
        ("cancel", &CANCEL),
        ("requeue_dead", &REQUEUE_DEAD),
        ("delete_dead", &DELETE_DEAD),
        ("trim", &TRIM),
        ("release", &RELEASE),
        ("progress", &PROGRESS),
        ("release_claim", &RELEASE_CLAIM),
    ];
    all.iter()
        .find(|(_, s)| s.get_hash() == script.get_hash())
        .map_or("script", |(n, _)| n)
}
