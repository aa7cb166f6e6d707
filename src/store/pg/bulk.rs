//! The PostgreSQL side of a commit: rows written a set at a time.
//!
//! A first apply writes tens of thousands of rows. One statement per row, even sent in large
//! batches, left the server parsing, planning and running every row on its own (37× a raw
//! `COPY` of the same rows). Here the rows of one [`Stmt`] are queued, and sent as one
//! statement whose parameters are arrays, one per column, read back row by row with `unnest`:
//! `INSERT ... SELECT ... FROM unnest($1::text[], ...) ... ON CONFLICT ...` and
//! `DELETE ... USING unnest(...) WHERE ...`. The server plans each statement once and reads
//! the values in binary, and the one-row statement is the only text of each write (both
//! stores run the same SQL, see `write.rs`). An insert that cannot conflict is loaded with
//! `COPY ... FROM STDIN` instead, the server's fastest way in (it inserts rows in batches,
//! where `INSERT ... SELECT` inserts one at a time): a plain insert (bindings, decided
//! requests, the audit log), and an upsert none of whose keys is stored yet (one query asks),
//! as in a first apply. Each row is encoded once, as it is queued, in `COPY`'s binary format:
//! a `COPY` sends those bytes as they are, a set statement reads its arrays back from them.
//! A delete from a table that holds no rows is not sent, and an upsert into one is loaded with
//! `COPY` without asking for stored keys (one query asks which tables are empty): a first
//! apply re-declares every binding, a delete by owner then an insert, into an empty table.
//!
//! # The same result as one statement per row, in order
//!
//! Queued rows are sent (a flush) as every queued delete statement first, then every insert
//! statement, each with its rows in the order they came. That moves writes past one another,
//! which changes nothing as long as the writes moved are independent: rows of different
//! tables never interact within a commit (sessions refer to users, but a commit never inserts
//! sessions), and writes of one table with different keys do not either, unless the table has
//! another unique constraint. A write that would not be independent flushes the queue first:
//!
//! - an insert whose key a queued insert of its table already has: the second row must see
//!   the first one (an upsert keeps a login only of the same owner), and one statement may not
//!   write a row twice;
//! - a delete whose key a queued insert of its table has (the delete would run first), any
//!   delete while inserts are queued for a table with another unique constraint (a delete may
//!   free a value that insert takes), and a delete without a key while inserts of its table
//!   are queued;
//! - an insert into a table whose queued inserts use another statement.
//!
//! A delete queued before an insert of the same key (a binding re-declared: delete by owner,
//! then insert) keeps its order, since deletes go first. Statements without a [`Stmt`] (the
//! revision bump, a chosen password's conditional update) and reads of the revision run after
//! a flush. Everything runs in the commit's one transaction: the first failure aborts it all.

use super::super::rows::Val;
use super::super::write::{Effect, Stmt, Writer};
use super::super::StoreError;
use super::revision;
use postgres::types::ToSql;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The type of one parameter of a statement, the same in each of its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Bool,
}

impl Kind {
    fn of(v: &Val) -> Self {
        match v {
            Val::Text(_) => Kind::Text,
            Val::Int(_) => Kind::Int,
            Val::Bool(_) => Kind::Bool,
        }
    }

    /// The array type the statement casts the parameter to.
    fn array_type(self) -> &'static str {
        match self {
            Kind::Text => "text[]",
            Kind::Int => "int8[]",
            Kind::Bool => "bool[]",
        }
    }
}

/// The values of one parameter across the queued rows of a statement, borrowed from the
/// encoded rows, as the array parameter of a set statement.
enum Column<'a> {
    Text(Vec<Option<&'a str>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<bool>),
}

impl Column<'_> {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(c) => c,
            Column::Int(c) => c,
            Column::Bool(c) => c,
        }
    }
}

/// The header of `COPY`'s binary format: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The queued rows of one statement, each encoded once, as it comes, as a tuple of `COPY`'s
/// binary format (field count; each field's length, -1 for NULL, and bytes: text as UTF-8,
/// integers as 8 bytes big-endian, flags as one byte), which a `COPY` sends as they are and
/// a set statement reads back as arrays. The values are not copied one by one into owned
/// strings, nor escaped for `COPY`'s text format.
struct Group {
    stmt: &'static Stmt,
    kinds: Vec<Kind>,
    rows: u64,
    tuples: Vec<u8>,
}

impl Group {
    fn new(stmt: &'static Stmt, args: &[Val]) -> Self {
        Group {
            stmt,
            kinds: args.iter().map(Kind::of).collect(),
            rows: 0,
            tuples: Vec::new(),
        }
    }

    /// Appends one row.
    fn push(&mut self, args: &[Val]) -> Result<(), StoreError> {
        if args.len() != self.kinds.len() {
            return Err(not_set(self.stmt, "a different number of parameters"));
        }
        if args.iter().zip(&self.kinds).any(|(v, k)| Kind::of(v) != *k) {
            return Err(not_set(self.stmt, "a parameter whose type changed"));
        }
        let fields =
            i16::try_from(args.len()).map_err(|_| not_set(self.stmt, "too many parameters"))?;
        let out = &mut self.tuples;
        out.extend_from_slice(&fields.to_be_bytes());
        for v in args {
            match v {
                Val::Text(None) | Val::Int(None) => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Val::Text(Some(t)) => {
                    let len = i32::try_from(t.len())
                        .map_err(|_| not_set(self.stmt, "a value over 2 GiB"))?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(t.as_bytes());
                }
                Val::Int(Some(i)) => {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&i.to_be_bytes());
                }
                Val::Bool(b) => {
                    out.extend_from_slice(&1i32.to_be_bytes());
                    out.push(u8::from(*b));
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The queued values of the parameters `which` (0-based), one array each.
    fn columns(&self, which: &[usize]) -> Result<Vec<Column<'_>>, StoreError> {
        let rows = usize::try_from(self.rows).unwrap_or(0);
        let mut cols: Vec<Column> = which
            .iter()
            .map(|&i| match self.kinds[i] {
                Kind::Text => Column::Text(Vec::with_capacity(rows)),
                Kind::Int => Column::Int(Vec::with_capacity(rows)),
                Kind::Bool => Column::Bool(Vec::with_capacity(rows)),
            })
            .collect();
        let bad = || not_set(self.stmt, "a malformed queued row");
        let mut rest = self.tuples.as_slice();
        let mut take = |n: usize| -> Result<&[u8], StoreError> {
            let (head, tail) = rest.split_at_checked(n).ok_or_else(bad)?;
            rest = tail;
            Ok(head)
        };
        for _ in 0..rows {
            take(2)?;
            for i in 0..self.kinds.len() {
                let len = i32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?);
                let value = match usize::try_from(len) {
                    Ok(n) => Some(take(n)?),
                    Err(_) => None,
                };
                let Some(at) = which.iter().position(|&w| w == i) else {
                    continue;
                };
                match (&mut cols[at], value) {
                    (Column::Text(c), v) => {
                        c.push(v.map(std::str::from_utf8).transpose().map_err(|_| bad())?)
                    }
                    (Column::Int(c), v) => c.push(
                        v.map(|b| b.try_into().map(i64::from_be_bytes))
                            .transpose()
                            .map_err(|_| bad())?,
                    ),
                    (Column::Bool(c), Some(b)) => c.push(b == [1]),
                    (Column::Bool(_), None) => return Err(bad()),
                }
            }
        }
        Ok(cols)
    }
}

/// One open write transaction of a [`super::PgStore`] commit (see the module comment).
pub(super) struct PgWriter<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    /// Queued rows per statement, in the order each statement's first row came.
    groups: Vec<Group>,
    /// Hashes of the queued inserts' table and key. A collision only costs a needless flush.
    inserted: HashSet<u64>,
    /// When the first queued row came (the time spent encoding rows, logged at a flush).
    queued_at: Option<std::time::Instant>,
}

impl<'a, 't> PgWriter<'a, 't> {
    /// A writer with nothing queued.
    pub(super) fn new(tx: &'a mut postgres::Transaction<'t>) -> Self {
        PgWriter {
            tx,
            groups: Vec::new(),
            inserted: HashSet::new(),
            queued_at: None,
        }
    }

    /// Runs a read in the writer's transaction, after sending the queued rows.
    pub(super) fn query(
        &mut self,
        sql: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        self.flush()?;
        Ok(self.tx.query(sql, args)?)
    }

    /// Sends the queued rows: deletes first, then inserts (see the module comment).
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        let groups = std::mem::take(&mut self.groups);
        self.inserted.clear();
        if let Some(at) = self.queued_at.take() {
            tracing::debug!(statements = groups.len(), took = ?at.elapsed(), "store rows queued");
        }
        let empty = self.empty_tables(&groups)?;
        for effect in [Effect::Delete, Effect::Insert] {
            for g in groups.iter().filter(|g| g.stmt.effect == effect) {
                let started = std::time::Instant::now();
                let is_empty = empty.contains(g.stmt.table);
                let copy = match copy_columns(g.stmt) {
                    Some((cols, false)) => Some(cols),
                    Some((cols, true))
                        if !g.stmt.key.is_empty() && (is_empty || !self.any_stored(g, cols)?) =>
                    {
                        Some(cols)
                    }
                    _ => None,
                };
                let rows = match copy {
                    // Nothing to delete from a table that holds no rows.
                    None if effect == Effect::Delete && is_empty => 0,
                    Some(cols) => self.copy(g, cols)?,
                    None => {
                        let sql = set_sql(g.stmt, &g.kinds)?;
                        let all: Vec<usize> = (0..g.kinds.len()).collect();
                        let columns = g.columns(&all)?;
                        let params: Vec<_> = columns.iter().map(Column::param).collect();
                        self.tx.execute(sql.as_str(), &params)?
                    }
                };
                tracing::debug!(table = g.stmt.table, effect = ?g.stmt.effect, queued = g.rows,
                    rows, empty = is_empty, took = ?started.elapsed(), "store rows written as a set");
            }
        }
        Ok(())
    }

    /// The tables among `groups`' whose emptiness decides how they are written (deletes, and
    /// upserts with a key) that hold no rows now, asked in one query. A table found empty stays
    /// so until the flush runs its insert, which comes after its deletes and is the flush's
    /// only insert into it (a second insert statement of a table flushes the queue first).
    fn empty_tables(&mut self, groups: &[Group]) -> Result<HashSet<&'static str>, StoreError> {
        let mut tables: Vec<&'static str> = groups
            .iter()
            .filter(|g| match copy_columns(g.stmt) {
                Some((_, upsert)) => upsert && !g.stmt.key.is_empty(),
                None => g.stmt.effect == Effect::Delete,
            })
            .map(|g| g.stmt.table)
            .collect();
        tables.sort_unstable();
        tables.dedup();
        if tables.is_empty() {
            return Ok(HashSet::new());
        }
        let probes: Vec<String> = tables
            .iter()
            .map(|t| format!("NOT EXISTS (SELECT 1 FROM {t})"))
            .collect();
        let row = self
            .tx
            .query_one(format!("SELECT {}", probes.join(", ")).as_str(), &[])?;
        let mut empty = HashSet::new();
        for (i, t) in tables.into_iter().enumerate() {
            if row.try_get::<_, bool>(i)? {
                empty.insert(t);
            }
        }
        Ok(empty)
    }

    /// Loads the rows of a plain insert with `COPY ... FROM STDIN` in binary format, in order.
    fn copy(&mut self, g: &Group, cols: &str) -> Result<u64, StoreError> {
        use std::io::Write;
        let io =
            |e: std::io::Error| StoreError::Postgres(format!("copy into {}: {e}", g.stmt.table));
        let sql = format!("COPY {} ({cols}) FROM STDIN (FORMAT binary)", g.stmt.table);
        let mut w = self.tx.copy_in(sql.as_str())?;
        w.write_all(COPY_HEADER).map_err(io)?;
        for chunk in g.tuples.chunks(1 << 20) {
            w.write_all(chunk).map_err(io)?;
        }
        w.write_all(&(-1i16).to_be_bytes()).map_err(io)?;
        Ok(w.finish()?)
    }

    /// Whether the table already holds a row with the key of one of `g`'s rows (`cols` names
    /// the statement's parameters; true when it has no key). No other commit can add one
    /// before this one's rows are written: commits run one at a time (the revision row lock).
    fn any_stored(&mut self, g: &Group, cols: &str) -> Result<bool, StoreError> {
        if g.stmt.key.is_empty() {
            return Ok(true);
        }
        let names: Vec<&str> = cols.split(',').map(str::trim).collect();
        let mut on = Vec::new();
        let mut arrays = Vec::new();
        for (j, &i) in g.stmt.key.iter().enumerate() {
            on.push(format!("t.{} = k.p{}", names[i], j + 1));
            arrays.push(format!("${}::{}", j + 1, g.kinds[i].array_type()));
        }
        let columns = g.columns(g.stmt.key)?;
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(Column::param).collect();
        let names: Vec<String> = (1..=g.stmt.key.len()).map(|j| format!("p{j}")).collect();
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} t JOIN unnest({}) AS k({}) ON {})",
            g.stmt.table,
            arrays.join(", "),
            names.join(", "),
            on.join(" AND ")
        );
        Ok(self.tx.query_one(sql.as_str(), &params)?.get(0))
    }

    /// Whether a queued insert of `stmt.table` satisfies `f`.
    fn queued_insert(&self, stmt: &Stmt, f: impl Fn(&Stmt) -> bool) -> bool {
        self.groups
            .iter()
            .any(|g| g.stmt.table == stmt.table && g.stmt.effect == Effect::Insert && f(g.stmt))
    }
}

/// The hash of a table and a row key; none when the key is empty or holds a NULL (such a row
/// has no identity: a delete by key never matches it, and no unique constraint covers it).
fn key_hash(stmt: &Stmt, args: &[Val]) -> Option<u64> {
    if stmt.key.is_empty()
        || stmt
            .key
            .iter()
            .any(|&i| matches!(args[i], Val::Text(None) | Val::Int(None)))
    {
        return None;
    }
    let mut h = DefaultHasher::new();
    stmt.table.hash(&mut h);
    for &i in stmt.key {
        args[i].hash(&mut h);
    }
    Some(h.finish())
}

impl Writer for PgWriter<'_, '_> {
    fn exec(&mut self, sql: &'static str, args: Vec<Val<'_>>) -> Result<(), StoreError> {
        self.exec_counted(sql, args).map(drop)
    }

    fn exec_counted(&mut self, sql: &'static str, args: Vec<Val<'_>>) -> Result<u64, StoreError> {
        self.flush()?;
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|v| -> &(dyn ToSql + Sync) {
                match v {
                    Val::Text(t) => t,
                    Val::Int(i) => i,
                    Val::Bool(b) => b,
                }
            })
            .collect();
        let sql = numbered(sql, |n| format!("${n}"));
        Ok(self.tx.execute(sql.as_str(), &params)?)
    }

    fn row(&mut self, stmt: &'static Stmt, args: Vec<Val<'_>>) -> Result<(), StoreError> {
        let key = key_hash(stmt, &args);
        let seen = key.is_some_and(|k| self.inserted.contains(&k));
        let flush = match stmt.effect {
            Effect::Insert => seen || self.queued_insert(stmt, |s| !std::ptr::eq(s, stmt)),
            Effect::Delete => {
                seen || self.queued_insert(stmt, |s| s.other_unique || stmt.key.is_empty())
            }
        };
        if flush {
            self.flush()?;
        }
        if let (Effect::Insert, Some(k)) = (stmt.effect, key) {
            self.inserted.insert(k);
        }
        self.queued_at.get_or_insert_with(std::time::Instant::now);
        let at = match self.groups.iter().position(|g| std::ptr::eq(g.stmt, stmt)) {
            Some(at) => at,
            None => {
                self.groups.push(Group::new(stmt, &args));
                self.groups.len() - 1
            }
        };
        self.groups[at].push(&args)
    }

    fn revision(&mut self) -> Result<i64, StoreError> {
        self.flush()?;
        revision(&mut *self.tx)
    }
}

fn not_set(stmt: &Stmt, why: &str) -> StoreError {
    StoreError::Postgres(format!(
        "write to {} cannot be sent as a set: {why}",
        stmt.table
    ))
}

/// `sql` with each `?N` parameter replaced by `f(N)`.
fn numbered(sql: &str, f: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut pieces = sql.split('?');
    out.push_str(pieces.next().unwrap_or_default());
    for piece in pieces {
        let digits = piece.bytes().take_while(u8::is_ascii_digit).count();
        match piece[..digits].parse() {
            Ok(n) => out.push_str(&f(n)),
            Err(_) => out.push('?'),
        }
        out.push_str(&piece[digits..]);
    }
    out
}

/// The column list of an insert `INSERT INTO <table> (<cols>) VALUES (?1, ..., ?N) [ON
/// CONFLICT ...]` (each parameter its column's value), and whether an `ON CONFLICT` clause
/// follows. Such rows can be loaded with `COPY`, the fastest way in, when nothing can conflict:
/// a plain insert does nothing more (a duplicate key fails the load, and the commit, as it
/// fails the insert), nor does an upsert none of whose keys is in the table. None for any
/// other statement.
fn copy_columns(stmt: &Stmt) -> Option<(&'static str, bool)> {
    if stmt.effect != Effect::Insert {
        return None;
    }
    let rest = stmt
        .sql
        .strip_prefix(&format!("INSERT INTO {} (", stmt.table))?;
    let (cols, rest) = rest.split_once(')')?;
    let (tuple, tail) = rest
        .trim_start()
        .strip_prefix("VALUES (")?
        .split_once(')')?;
    let params: Vec<&str> = tuple.split(',').map(str::trim).collect();
    let positional = params.len() == cols.split(',').count()
        && params
            .iter()
            .enumerate()
            .all(|(i, p)| *p == format!("?{}", i + 1));
    let tail = tail.trim();
    let upsert = tail.starts_with("ON CONFLICT");
    (positional && (tail.is_empty() || upsert)).then_some((cols, upsert))
}

/// `stmt` for all the rows of `columns` at once: parameter `?N` becomes column `pN` of
/// `unnest` over the N-th array. Inserts read the rows in the order they came (`ORDINALITY`),
/// so identities (audit ids) and unique checks follow that order as row by row.
fn set_sql(stmt: &Stmt, kinds: &[Kind]) -> Result<String, StoreError> {
    let arrays: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| format!("${}::{}", i + 1, k.array_type()))
        .collect();
    let arrays = arrays.join(", ");
    let names: Vec<String> = (1..=kinds.len()).map(|i| format!("p{i}")).collect();
    let names = names.join(", ");
    let sql = numbered(stmt.sql, |n| format!("k.p{n}"));
    match stmt.effect {
        Effect::Insert => {
            let (head, rest) = sql
                .split_once("VALUES (")
                .ok_or_else(|| not_set(stmt, "no VALUES list"))?;
            let (row, tail) = rest
                .split_once(')')
                .ok_or_else(|| not_set(stmt, "an unclosed VALUES list"))?;
            Ok(format!(
                "{head}SELECT {row} FROM unnest({arrays}) WITH ORDINALITY AS k({names}, ord)
                 ORDER BY k.ord{tail}"
            ))
        }
        Effect::Delete => {
            let cond = sql
                .strip_prefix(&format!("DELETE FROM {} WHERE ", stmt.table))
                .ok_or_else(|| not_set(stmt, "not a DELETE ... WHERE of its table"))?;
            Ok(format!(
                "DELETE FROM {} USING unnest({arrays}) AS k({names}) WHERE {cond}",
                stmt.table
            ))
        }
    }
}
