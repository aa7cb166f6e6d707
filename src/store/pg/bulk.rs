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
//! as in a first apply.
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

/// The values of one parameter across the queued rows of a statement.
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<bool>),
}

impl Column {
    /// An empty column for values shaped like `v`.
    fn like(v: &Val) -> Self {
        match v {
            Val::Text(_) => Column::Text(Vec::new()),
            Val::Int(_) => Column::Int(Vec::new()),
            Val::Bool(_) => Column::Bool(Vec::new()),
        }
    }

    /// Appends `v`; false when it is not of this column's type.
    fn push(&mut self, v: Val) -> bool {
        match (self, v) {
            (Column::Text(c), Val::Text(t)) => c.push(t),
            (Column::Int(c), Val::Int(i)) => c.push(i),
            (Column::Bool(c), Val::Bool(b)) => c.push(b),
            _ => return false,
        }
        true
    }

    /// The array type the statement casts the parameter to.
    fn array_type(&self) -> &'static str {
        match self {
            Column::Text(_) => "text[]",
            Column::Int(_) => "int8[]",
            Column::Bool(_) => "bool[]",
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Text(c) => c.len(),
            Column::Int(c) => c.len(),
            Column::Bool(c) => c.len(),
        }
    }

    /// Appends value `r` as `COPY`'s text format writes it: `\N` for NULL, and backslash,
    /// tab, newline and carriage return escaped in text.
    fn copy_text(&self, r: usize, out: &mut Vec<u8>) {
        match self {
            Column::Text(c) => match &c[r] {
                None => out.extend_from_slice(b"\\N"),
                Some(t) => {
                    for b in t.bytes() {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            b => out.push(b),
                        }
                    }
                }
            },
            Column::Int(c) => match c[r] {
                None => out.extend_from_slice(b"\\N"),
                Some(i) => out.extend_from_slice(i.to_string().as_bytes()),
            },
            Column::Bool(c) => out.push(if c[r] { b't' } else { b'f' }),
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(c) => c,
            Column::Int(c) => c,
            Column::Bool(c) => c,
        }
    }
}

/// The queued rows of one statement.
struct Group {
    stmt: &'static Stmt,
    columns: Vec<Column>,
}

/// One open write transaction of a [`super::PgStore`] commit (see the module comment).
pub(super) struct PgWriter<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    /// Queued rows per statement, in the order each statement's first row came.
    groups: Vec<Group>,
    /// Hashes of the queued inserts' table and key. A collision only costs a needless flush.
    inserted: HashSet<u64>,
}

impl<'a, 't> PgWriter<'a, 't> {
    /// A writer with nothing queued.
    pub(super) fn new(tx: &'a mut postgres::Transaction<'t>) -> Self {
        PgWriter {
            tx,
            groups: Vec::new(),
            inserted: HashSet::new(),
        }
    }

    /// Sends the queued rows: deletes first, then inserts (see the module comment).
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        let groups = std::mem::take(&mut self.groups);
        self.inserted.clear();
        for effect in [Effect::Delete, Effect::Insert] {
            for g in groups.iter().filter(|g| g.stmt.effect == effect) {
                let started = std::time::Instant::now();
                let copy = match copy_columns(g.stmt) {
                    Some((cols, false)) => Some(cols),
                    Some((cols, true)) if !self.any_stored(g, cols)? => Some(cols),
                    _ => None,
                };
                let rows = match copy {
                    Some(cols) => self.copy(g, cols)?,
                    None => {
                        let sql = set_sql(g.stmt, &g.columns)?;
                        let params: Vec<_> = g.columns.iter().map(Column::param).collect();
                        self.tx.execute(sql.as_str(), &params)?
                    }
                };
                tracing::debug!(table = g.stmt.table, effect = ?g.stmt.effect, rows,
                    took = ?started.elapsed(), "store rows written as a set");
            }
        }
        Ok(())
    }

    /// Loads the rows of a plain insert with `COPY ... FROM STDIN` (text format), in order.
    fn copy(&mut self, g: &Group, cols: &str) -> Result<u64, StoreError> {
        use std::io::Write;
        let io =
            |e: std::io::Error| StoreError::Postgres(format!("copy into {}: {e}", g.stmt.table));
        let rows = g.columns.first().map_or(0, Column::len);
        let sql = format!("COPY {} ({cols}) FROM STDIN", g.stmt.table);
        let mut w = self.tx.copy_in(sql.as_str())?;
        let mut buf = Vec::with_capacity(1 << 20);
        for r in 0..rows {
            for (i, c) in g.columns.iter().enumerate() {
                if i > 0 {
                    buf.push(b'\t');
                }
                c.copy_text(r, &mut buf);
            }
            buf.push(b'\n');
            if buf.len() >= 1 << 20 {
                w.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
        w.write_all(&buf).map_err(io)?;
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
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (j, &i) in g.stmt.key.iter().enumerate() {
            on.push(format!("t.{} = k.p{}", names[i], j + 1));
            arrays.push(format!("${}::{}", j + 1, g.columns[i].array_type()));
            params.push(g.columns[i].param());
        }
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
    let key: Vec<&Val> = stmt.key.iter().map(|&i| &args[i]).collect();
    if key.is_empty()
        || key
            .iter()
            .any(|v| matches!(v, Val::Text(None) | Val::Int(None)))
    {
        return None;
    }
    let mut h = DefaultHasher::new();
    (stmt.table, key).hash(&mut h);
    Some(h.finish())
}

impl Writer for PgWriter<'_, '_> {
    fn exec(&mut self, sql: &'static str, args: Vec<Val>) -> Result<(), StoreError> {
        self.exec_counted(sql, args).map(drop)
    }

    fn exec_counted(&mut self, sql: &'static str, args: Vec<Val>) -> Result<u64, StoreError> {
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

    fn row(&mut self, stmt: &'static Stmt, args: Vec<Val>) -> Result<(), StoreError> {
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
        let at = match self.groups.iter().position(|g| std::ptr::eq(g.stmt, stmt)) {
            Some(at) => at,
            None => {
                self.groups.push(Group {
                    stmt,
                    columns: args.iter().map(Column::like).collect(),
                });
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[at];
        if group.columns.len() != args.len() {
            return Err(not_set(stmt, "a different number of parameters"));
        }
        for (c, v) in group.columns.iter_mut().zip(args) {
            if !c.push(v) {
                return Err(not_set(stmt, "a parameter whose type changed"));
            }
        }
        Ok(())
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
fn set_sql(stmt: &Stmt, columns: &[Column]) -> Result<String, StoreError> {
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, c.array_type()))
        .collect();
    let arrays = arrays.join(", ");
    let names: Vec<String> = (1..=columns.len()).map(|i| format!("p{i}")).collect();
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
