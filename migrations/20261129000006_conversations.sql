-- Chat conversations for inference.chat jobs. A conversation is created by
-- the job that starts it (its id is that job's id); each later job adds the
-- user's message and the model's answer together, once the answer exists,
-- so a failed job never leaves half a turn behind.
CREATE TABLE conversations (
    id          text PRIMARY KEY,
    model       text NOT NULL,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id               bigserial PRIMARY KEY,
    conversation_id  text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The job that added it, and its place among that job's messages: a
    -- redelivered job (worker killed after storing) adds nothing twice.
    job_id           text NOT NULL,
    position         smallint NOT NULL,
    role             text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content          text NOT NULL,
    -- Tokens of `content` by the conversation's model's tokenizer, when
    -- known: later turns fit the context without counting them again.
    tokens           integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, position)
);

CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
