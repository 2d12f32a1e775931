//! Handler of `inference.chat`, over `hangar-inference`'s runner.

use apalis_core::error::BoxDynError;
use hangar_inference::{ChatFailure, runner::DEFER_DELAY};
use hangar_queue::{JobContext, defer, permanent};
use hangar_shared::kinds::Chat;
use serde_json::Value;

use super::{Env, Run};

impl Run for Chat {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        match env.chat.run(job, self).await {
            Ok(v) => Ok(v),
            Err(ChatFailure::Cancelled) => Err("cancelled while generating".into()),
            // The model is not ready here: back to the queue, not a failure.
            Err(ChatFailure::Deferred(m)) => Err(defer(m, DEFER_DELAY).into()),
            Err(ChatFailure::Permanent(m)) => {
                tracing::error!(error = %m, "inference failed");
                Err(permanent(m).into())
            }
        }
    }
}
