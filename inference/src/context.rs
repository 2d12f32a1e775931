//! Fitting a conversation into the model's context: the prompt plus the
//! tokens to generate must fit, so the oldest turns go first, and the
//! system prompt and the new user message never go.

use hangar_shared::chat::{ChatMessage, Role};

/// Tokens a chat template adds around each message (role markers and
/// separators; ChatML spends 4-5) and once for the reply's header. A little
/// generous: an estimate that is too low overflows, one too high only drops
/// a turn a little early.
pub const PER_MESSAGE_OVERHEAD: usize = 6;
/// Tokens for the assistant header that opens the reply.
pub const REPLY_OVERHEAD: usize = 4;

/// The outcome of fitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// The messages to send, in order.
    pub messages: Vec<ChatMessage>,
    /// Earlier turns left out.
    pub dropped: usize,
    /// Estimated prompt tokens of what is sent.
    pub prompt_tokens: usize,
}

/// Rough tokens of `text` for servers that cannot count (no `/tokenize`):
/// about 3 characters a token for English with BPE vocabularies, rounded up.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(3) + 1
}

/// Keeps as many of the latest turns as fit in `context - max_tokens`.
/// `tokens[i]` counts `messages[i]`'s content. Fails with the prompt's
/// size when even the system prompt and the last message do not fit.
pub fn fit(
    messages: &[ChatMessage],
    tokens: &[usize],
    context: usize,
    max_tokens: usize,
) -> Result<Fitted, usize> {
    let cost = |i: usize| tokens[i] + PER_MESSAGE_OVERHEAD;
    let budget = context.saturating_sub(max_tokens);
    let system = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
    let last = messages.len() - 1;
    let mut used = REPLY_OVERHEAD + cost(last) + if system == 1 { cost(0) } else { 0 };
    if used > budget {
        return Err(used);
    }
    // Walk back from the newest earlier turn while it fits.
    let mut first_kept = last;
    while first_kept > system && used + cost(first_kept - 1) <= budget {
        first_kept -= 1;
        used += cost(first_kept);
    }
    // Chat templates expect the history to open with a user turn.
    while first_kept < last && messages[first_kept].role != Role::User {
        used -= cost(first_kept);
        first_kept += 1;
    }
    let mut kept: Vec<ChatMessage> = messages[..system].to_vec();
    kept.extend_from_slice(&messages[first_kept..]);
    Ok(Fitted {
        dropped: first_kept - system,
        messages: kept,
        prompt_tokens: used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }

    #[test]
    fn the_oldest_turns_go_first_never_the_system_prompt_or_the_question() {
        let msgs = vec![
            m(Role::System, "sys"),
            m(Role::User, "u1"),
            m(Role::Assistant, "a1"),
            m(Role::User, "u2"),
            m(Role::Assistant, "a2"),
            m(Role::User, "u3"),
        ];
        let tokens = vec![10, 10, 10, 10, 10, 10];
        // Everything fits: 4 + 6 * 16 = 100.
        let all = fit(&msgs, &tokens, 200, 100).unwrap();
        assert_eq!((all.dropped, all.messages.len(), all.prompt_tokens), (0, 6, 100));
        // Room for system + 3 turns: drops u1, a1, and keeps u2 first.
        let some = fit(&msgs, &tokens, 190, 100).unwrap();
        assert_eq!(some.messages[0].content, "sys");
        assert_eq!(some.messages[1].content, "u2", "history opens with a user turn");
        assert_eq!(some.dropped, 2);
        assert!(some.prompt_tokens <= 90);
        // Only system + question.
        let least = fit(&msgs, &tokens, 36 + 100, 100).unwrap();
        assert_eq!(
            least
                .messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>(),
            ["sys", "u3"]
        );
        assert_eq!(least.dropped, 4);
        // Not even that.
        assert_eq!(fit(&msgs, &tokens, 35 + 100, 100), Err(36));
        // Without a system prompt nothing is kept in front.
        let no_sys = fit(&msgs[1..], &tokens[1..], 30 + 100, 100).unwrap();
        assert_eq!(no_sys.messages.len(), 1);
    }
}
