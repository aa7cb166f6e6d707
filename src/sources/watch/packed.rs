//! One manifest file's parse in the dense form the directory cache holds.
//!
//! Why: the idle daemon holds every file's parse, and at 10,000 users (67,000
//! objects) the typed objects took 83 MiB of heap — each a Kubernetes-style
//! object with a full `ObjectMeta` (a dozen optional fields), its own copy of
//! the file name, and one allocation per string. Packed, a file's objects are
//! one JSON text of the typed objects (their document lines beside them, the
//! file name once), LZ4-compressed: a few bytes per field, decoded only when a
//! round merges the snapshot. Decoding JSON into the typed objects is the same
//! path parsing takes (YAML → JSON value → typed), and costs about what the
//! copy the merge made before did.
//!
//! A parse is packed only when it decodes back to exactly the same objects
//! (checked once, when the file is parsed); otherwise it is held as parsed, so
//! the merged snapshot never differs from the one the files give.

use crate::resources::{AccessBinding, ApiToken, ModelStageRequest, User};
use crate::snapshot::{Declared, Snapshot, Source};
use serde::{Deserialize, Serialize};

/// One file's parse: everything but its objects as parsed, the objects packed.
#[derive(Clone, Debug)]
pub(super) enum Parse {
    /// The four object lists packed (see the module doc); `rest` holds the
    /// diagnostics, counts, broken-file mark, access-domain objects and digest.
    Packed {
        /// The parse with its users, bindings, tokens and requests taken out.
        rest: Snapshot,
        /// [`Objects`] as JSON, LZ4-compressed with its length in front.
        objects: Box<[u8]>,
    },
    /// A parse that does not survive packing unchanged, held as parsed.
    Plain(Snapshot),
}

/// The objects of one file, each with its document's first line (the file name
/// is the file's label, held once).
#[derive(Serialize, Deserialize)]
struct Objects<U, B, T, R> {
    users: Vec<(Option<usize>, U)>,
    bindings: Vec<(Option<usize>, B)>,
    tokens: Vec<(Option<usize>, T)>,
    requests: Vec<(Option<usize>, R)>,
}

type Owned = Objects<User, AccessBinding, ApiToken, ModelStageRequest>;

impl Parse {
    /// Packs the parse of the file labelled `file`, when it decodes back unchanged.
    pub(super) fn pack(file: &str, mut snap: Snapshot) -> Parse {
        let Some(objects) = encode(file, &snap) else {
            return Parse::Plain(snap);
        };
        let objects = objects.into_boxed_slice();
        let (users, bindings, tokens, requests) = (
            std::mem::take(&mut snap.users),
            std::mem::take(&mut snap.bindings),
            std::mem::take(&mut snap.tokens),
            std::mem::take(&mut snap.requests),
        );
        // Compare with what packing took out: a field the objects' serde forms do
        // not carry back would change the snapshot, so such a parse stays plain.
        let same = unpack(file, &snap, &objects).is_some_and(|u| {
            same(&u.users, &users)
                && same(&u.bindings, &bindings)
                && same(&u.tokens, &tokens)
                && same(&u.requests, &requests)
        });
        if same {
            return Parse::Packed {
                rest: snap,
                objects,
            };
        }
        snap.users = users;
        snap.bindings = bindings;
        snap.tokens = tokens;
        snap.requests = requests;
        Parse::Plain(snap)
    }

    /// The parse as it was: every object decoded.
    pub(super) fn snapshot(&self, file: &str) -> Snapshot {
        match self {
            Parse::Plain(snap) => snap.clone(),
            Parse::Packed { rest, objects } => unpack(file, rest, objects)
                // Checked when packed: these very bytes decoded to these objects then.
                .expect("a packed parse decodes as it did when it was packed"),
        }
    }

    /// Everything of the parse but the packed objects (diagnostics, broken-file mark, ...).
    pub(super) fn rest(&self) -> &Snapshot {
        match self {
            Parse::Plain(snap) | Parse::Packed { rest: snap, .. } => snap,
        }
    }
}

/// Whether two lists hold the same declarations, field by field. (The resource
/// types have no `PartialEq`; their `Debug` form shows every field, set or not.)
fn same<K: std::fmt::Debug>(a: &[Declared<K>], b: &[Declared<K>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| format!("{x:?}") == format!("{y:?}"))
}

/// The four object lists as packed bytes; None when an object does not fit the
/// packed form (a source in another file, a domain already resolved) or does not encode.
fn encode(file: &str, snap: &Snapshot) -> Option<Vec<u8>> {
    fn lines<'a, K>(file: &str, list: &'a [Declared<K>]) -> Option<Vec<(Option<usize>, &'a K)>> {
        list.iter()
            .map(|d| {
                (d.source.file.as_deref() == Some(file) && d.domain.is_none())
                    .then_some((d.source.line, &d.object))
            })
            .collect()
    }
    let objects = Objects {
        users: lines(file, &snap.users)?,
        bindings: lines(file, &snap.bindings)?,
        tokens: lines(file, &snap.tokens)?,
        requests: lines(file, &snap.requests)?,
    };
    let json = serde_json::to_vec(&objects).ok()?;
    Some(lz4_flex::block::compress_prepend_size(&json))
}

/// `rest` with the objects of `packed` put back; None when the bytes do not decode.
fn unpack(file: &str, rest: &Snapshot, packed: &[u8]) -> Option<Snapshot> {
    fn declared<K>(file: &str, list: Vec<(Option<usize>, K)>) -> Vec<Declared<K>> {
        list.into_iter()
            .map(|(line, object)| {
                Declared::new(
                    object,
                    Source {
                        file: Some(file.to_string()),
                        line,
                    },
                )
            })
            .collect()
    }
    let json = lz4_flex::block::decompress_size_prepended(packed).ok()?;
    let objects: Owned = serde_json::from_slice(&json).ok()?;
    let mut snap = rest.clone();
    snap.users = declared(file, objects.users);
    snap.bindings = declared(file, objects.bindings);
    snap.tokens = declared(file, objects.tokens);
    snap.requests = declared(file, objects.requests);
    Some(snap)
}
