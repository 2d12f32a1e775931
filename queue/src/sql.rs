//! [`JobStatus`] as a PostgreSQL `text` column (feature `sqlx`): the records
//! in PostgreSQL keep the state names Redis stores (the column's CHECK lists
//! the same seven), and read back typed, so no caller compares strings.

use sqlx::{
    Decode, Encode, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
};

use crate::JobStatus;

impl Type<Postgres> for JobStatus {
    fn type_info() -> PgTypeInfo {
        <str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <str as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for JobStatus {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for JobStatus {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let name = <&str as Decode<Postgres>>::decode(value)?;
        Self::parse(name).ok_or_else(|| format!("job_runs.state holds an unknown state {name:?}").into())
    }
}
