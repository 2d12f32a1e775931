-- The accounts of the AWS Organization, as the scheduler last read them
-- with organizations:ListAccounts (HANGAR_AWS_ORGANIZATION_ROLE). Every
-- process loads this list to know which accounts it syncs; the scheduler
-- replaces it on each refresh. An account that leaves the organization or
-- stops being ACTIVE is deleted here (its synced rows stay, as for an
-- account removed from HANGAR_AWS_ACCOUNTS).
CREATE TABLE aws_org_accounts (
    account_id    text PRIMARY KEY CHECK (account_id ~ '^[0-9]{12}$'),
    name          text NOT NULL,
    email         text NOT NULL DEFAULT '',
    -- The role assumed to sync it; NULL for the account whose credentials
    -- Hangar runs with (the management or delegated administrator account).
    role_arn      text,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
