//! Reading a plugin's answers out of its memory field by field costs wasmtime a
//! type lookup, a memory lookup and a bounds check per field; for a plugin that
//! adds a few attributes to every post that was as much as the plugin's own
//! work. This module lifts the `list<outcome>` that `process` returns in one
//! pass over the guest's bytes: one bounds check per list, per string and per
//! record, fields read at offsets fixed at compile time.
//!
//! Like `lowering`, it implements wasmtime's `ComponentType` and `Lift` by hand
//! through hidden items of its API; it type-checks as exactly the WIT type it
//! stands for and checks what wasmtime checks (bounds, alignment, cases, UTF-8).
//! A plugin whose strings are not UTF-8 (the canonical ABI lets a component
//! choose UTF-16) is lifted by wasmtime itself, once the same limits are
//! checked on its bytes.
//!
//! Attribute values are lifted straight into the post's own types, and their
//! names are shared: plugins set the same few names on every post, so each
//! name is allocated once per thread instead of once per post.

// The trait implementations below are `unsafe` by wasmtime's definition; the
// code in them is safe Rust reading a bounds-checked slice.
#![allow(unsafe_code)]

use wasmtime::ValRaw;
use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};

use std::cell::RefCell;

use super::bindings as wit;
use super::lowering::{Fields, payload};
use crate::post::{AttrName, AttrValue};

/// What `process` returns: one outcome per post, lifted in one pass.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Outcomes {
    pub(crate) outcomes: Vec<Outcome>,
    /// The attributes every outcome sets, one outcome after the other, so a
    /// batch keeps them in one buffer instead of one per changed post.
    pub(crate) attrs: Vec<(AttrName, AttrValue)>,
}

impl Outcomes {
    /// Appends `other`'s outcomes (and their attributes) after these.
    pub(crate) fn append(&mut self, mut other: Outcomes) {
        self.outcomes.append(&mut other.outcomes);
        self.attrs.append(&mut other.attrs);
    }
}

/// The contract's `outcome`, with the host's attribute types.
// Boxing the changes would cost an allocation per changed post; outcomes live
// only from one call's lift to the changes being applied.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Keep the post, with these changes if any.
    Keep(Option<Changes>),
    /// Drop the post on purpose, with a reason.
    Drop(String),
    /// The plugin could not process the post.
    Fail(String),
}

/// The contract's `changes`: every `None` means "unchanged".
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    pub(crate) text: Option<String>,
    pub(crate) lang: Option<String>,
    pub(crate) author_id: Option<String>,
    pub(crate) author_username: Option<String>,
    pub(crate) author_name: Option<String>,
    pub(crate) author_location: Option<Option<String>>,
    pub(crate) mentions: Option<Vec<String>>,
    pub(crate) urls: Option<Vec<String>>,
    pub(crate) in_reply_to_user_id: Option<Option<String>>,
    /// How many attributes this outcome sets: the next ones of
    /// [`Outcomes::attrs`], in the plugin's order (a repeated name keeps its
    /// last value).
    pub(crate) set_attrs: usize,
    pub(crate) remove_attrs: Vec<String>,
}

/// The host's outcome for a lifted `wit::Outcome`; its attributes go to `attrs`.
fn outcome_from_wit(outcome: wit::Outcome, attrs: &mut Vec<(AttrName, AttrValue)>) -> Outcome {
    match outcome {
        wit::Outcome::Keep(changes) => {
            Outcome::Keep(changes.map(|changes| changes_from_wit(changes, attrs)))
        }
        wit::Outcome::Drop(reason) => Outcome::Drop(reason),
        wit::Outcome::Fail(error) => Outcome::Fail(error),
    }
}

fn changes_from_wit(changes: wit::Changes, attrs: &mut Vec<(AttrName, AttrValue)>) -> Changes {
    let set_attrs = changes.set_attrs.len();
    attrs.extend(
        changes
            .set_attrs
            .into_iter()
            .map(|attr| (AttrName::from(attr.name), attr_value(attr.value))),
    );
    Changes {
        text: changes.text,
        lang: changes.lang,
        author_id: changes.author_id,
        author_username: changes.author_username,
        author_name: changes.author_name,
        author_location: changes.author_location,
        mentions: changes.mentions,
        urls: changes.urls,
        in_reply_to_user_id: changes.in_reply_to_user_id,
        set_attrs,
        remove_attrs: changes.remove_attrs,
    }
}

fn attr_value(value: wit::AttrValue) -> AttrValue {
    match value {
        wit::AttrValue::Boolean(value) => AttrValue::Bool(value),
        wit::AttrValue::Integer(value) => AttrValue::Int(value),
        wit::AttrValue::Float(value) => AttrValue::Float(value),
        wit::AttrValue::Text(value) => AttrValue::Str(value),
        wit::AttrValue::Texts(value) => AttrValue::List(value),
    }
}

// SAFETY: the ABI, flat form and type check are those of `list<outcome>` as
// wasmtime derives them for `Vec<wit::Outcome>`.
unsafe impl ComponentType for Outcomes {
    type Lower = <Vec<wit::Outcome> as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <Vec<wit::Outcome> as ComponentType>::ABI;
    const MAY_REQUIRE_REALLOC: bool = <Vec<wit::Outcome> as ComponentType>::MAY_REQUIRE_REALLOC;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<wit::Outcome> as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: reads only inside the guest memory wasmtime hands over, with every
// pointer, length, case and string checked as wasmtime's own lifting checks
// them.
unsafe impl Lift for Outcomes {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let [ptr, len]: &[ValRaw; 2] = src;
        let (ptr, len) = (ptr.get_u32(), len.get_u32());
        match Encoding::of(cx) {
            Encoding::Utf8 => lift_list(cx.memory(), ptr, len),
            encoding => {
                count_before_lifting(cx.memory(), ptr, len, encoding)?;
                Vec::<wit::Outcome>::linear_lift_from_flat(cx, ty, src).map(from_wit)
            }
        }
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let pair: &[u8; 8] = bytes
            .first_chunk()
            .ok_or_else(|| malformed("the outcome list's pointer is cut short"))?;
        let (ptr, len) = (u32_at(pair, 0), u32_at(pair, 4));
        match Encoding::of(cx) {
            Encoding::Utf8 => lift_list(cx.memory(), ptr, len),
            encoding => {
                count_before_lifting(cx.memory(), ptr, len, encoding)?;
                Vec::<wit::Outcome>::linear_lift_from_memory(cx, ty, bytes).map(from_wit)
            }
        }
    }
}

fn from_wit(outcomes: Vec<wit::Outcome>) -> Outcomes {
    let mut attrs = Vec::new();
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| outcome_from_wit(outcome, &mut attrs))
        .collect();
    Outcomes { outcomes, attrs }
}

/// How a plugin's strings are encoded (its component chooses), for what the
/// host's UTF-8 copy of one can cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16,
    /// Latin-1, or UTF-16 when the length has [`UTF16_TAG`] set.
    CompactUtf16,
}

/// The bit of a `latin1+utf16` string's length that says it is UTF-16.
const UTF16_TAG: u32 = 1 << 31;

impl Encoding {
    fn of(cx: &LiftContext<'_>) -> Encoding {
        match cx.options().string_encoding {
            StringEncoding::Utf8 => Encoding::Utf8,
            StringEncoding::Utf16 => Encoding::Utf16,
            StringEncoding::CompactUtf16 => Encoding::CompactUtf16,
        }
    }

    /// The most bytes the host's UTF-8 copy of a string whose length field
    /// is `len` can take: a UTF-16 code unit makes at most 3 bytes of UTF-8,
    /// a Latin-1 character at most 2.
    fn host_bytes(self, len: u32) -> usize {
        let len = len as usize;
        match self {
            Encoding::Utf8 => len,
            Encoding::Utf16 => len.saturating_mul(3),
            Encoding::CompactUtf16 if len & UTF16_TAG as usize != 0 => {
                (len & !(UTF16_TAG as usize)).saturating_mul(3)
            }
            Encoding::CompactUtf16 => len.saturating_mul(2),
        }
    }
}

/// For a plugin whose strings wasmtime lifts (not UTF-8): checks the limits
/// on the outcomes' bytes first, as for any plugin, and counts what they
/// carry. wasmtime lifts a list whole, so one post past its limit fails the
/// call, and the batch's retry post by post fails only that post.
fn count_before_lifting(
    memory: &[u8],
    ptr: u32,
    len: u32,
    encoding: Encoding,
) -> wasmtime::Result<()> {
    let limits = LIMITS.get();
    let (sizes, total) = measure(memory, ptr, len, limits, encoding)?;
    if let Some(size) = sizes.into_iter().find(|size| *size > limits.post_bytes) {
        return Err(wasmtime::Error::msg(post_limit(size, limits)));
    }
    LIMITS.set(ResultLimits {
        spent: limits.spent + total,
        ..limits
    });
    Ok(())
}

/// The reason a call that returned `returned` outcomes for `posts` posts fails with.
pub(crate) fn wrong_count(returned: usize, posts: usize) -> String {
    format!("returned {returned} outcomes for {posts} posts")
}

/// The reason a post past `limits.post_bytes` fails with.
fn post_limit(size: usize, limits: ResultLimits) -> String {
    format!(
        "returned {} KiB for one post, past the limit of {} KiB on one post's changes (`max_post_kb` of its [[plugins]] entry)",
        size / 1024,
        limits.post_bytes / 1024
    )
}

fn malformed(what: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("the plugin returned malformed outcomes: {what}"))
}

/// What one `process` call may hand the host, checked on the guest's bytes
/// before anything is allocated: a string or list referenced by several
/// outcomes counts each time, since each becomes its own copy, and an item
/// of a list counts what the host spends on it even when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultLimits {
    /// The strings of all outcomes together, for one batch: when a batch is
    /// retried post by post, its calls share this budget, so a plugin hands
    /// the host at most this much per batch however it is called.
    pub(crate) call_bytes: usize,
    /// The strings of one outcome; past it that post fails.
    pub(crate) post_bytes: usize,
    /// What earlier calls for the same batch returned.
    pub(crate) spent: usize,
    /// How many outcomes the call must return (one per post of its batch),
    /// checked before anything is read or allocated for them; `None` when
    /// any number will do.
    pub(crate) outcomes: Option<usize>,
}

impl ResultLimits {
    pub(crate) const UNLIMITED: ResultLimits = ResultLimits {
        call_bytes: usize::MAX,
        post_bytes: usize::MAX,
        spent: 0,
        outcomes: None,
    };
}

thread_local! {
    static LIMITS: std::cell::Cell<ResultLimits> =
        const { std::cell::Cell::new(ResultLimits::UNLIMITED) };
}

/// Runs `call` (a `process` call) with `limits` on what it may return; adds
/// what it returned to `limits.spent`.
pub(crate) fn with_limits<R>(limits: &mut ResultLimits, call: impl FnOnce() -> R) -> R {
    let before = LIMITS.replace(*limits);
    let result = call();
    *limits = LIMITS.replace(before);
    result
}

/// What the host spends on an item of a `list<string>` besides its bytes: a
/// list of empty strings costs nothing in the plugin's strings, and a
/// `String` each on the host.
const STRING_ITEM_COST: usize = std::mem::size_of::<String>();
/// What the host spends on an attribute besides its strings' bytes.
const ATTR_ITEM_COST: usize = std::mem::size_of::<(AttrName, AttrValue)>();

/// What the host spends on the `list<string>` of `len` items at `ptr`; once
/// the items alone are past `limit`, their bytes are not read.
fn strings_cost(
    memory: &[u8],
    ptr: u32,
    len: u32,
    limit: usize,
    encoding: Encoding,
) -> wasmtime::Result<usize> {
    let items = list::<STRING_SIZE>(memory, ptr, len, 4)?;
    let cost = items.len().saturating_mul(STRING_ITEM_COST);
    if cost > limit {
        return Ok(cost);
    }
    Ok(items
        .map(|item| encoding.host_bytes(u32_at(item, 4)))
        .fold(cost, usize::saturating_add))
}

/// The bytes one outcome makes the host allocate (its strings, and its lists'
/// items), read without allocating. Once past `limit` (the most one post may
/// carry) it may stop counting: the answer is then only more than `limit`.
fn outcome_bytes(
    memory: &[u8],
    record: &[u8; OUTCOME.size],
    limit: usize,
    encoding: Encoding,
) -> wasmtime::Result<usize> {
    let at = OUTCOME.payload;
    let string_len = |at: usize| encoding.host_bytes(u32_at(record, at + 4));
    let strings_len = |at: usize| {
        strings_cost(
            memory,
            u32_at(record, at),
            u32_at(record, at + 4),
            limit,
            encoding,
        )
    };
    match record[0] {
        1 | 2 => Ok(string_len(at)),
        0 if record[at] == 1 => {
            let at = at + OPTION_CHANGES_PAYLOAD;
            let mut total = 0usize;
            for field in [
                CHANGES.text,
                CHANGES.lang,
                CHANGES.author_id,
                CHANGES.author_username,
                CHANGES.author_name,
            ] {
                if record[at + field] == 1 {
                    total += string_len(at + field + OPTION_STRING_PAYLOAD);
                }
            }
            for field in [CHANGES.author_location, CHANGES.in_reply_to_user_id] {
                let inner = at + field + OPTION_OPTION_PAYLOAD;
                if record[at + field] == 1 && record[inner] == 1 {
                    total += string_len(inner + OPTION_STRING_PAYLOAD);
                }
            }
            for field in [CHANGES.mentions, CHANGES.urls] {
                if record[at + field] == 1 {
                    total = total.saturating_add(strings_len(at + field + OPTION_STRINGS_PAYLOAD)?);
                }
            }
            total = total.saturating_add(strings_len(at + CHANGES.remove_attrs)?);
            let set = at + CHANGES.set_attrs;
            let items = list::<{ ATTR.size }>(
                memory,
                u32_at(record, set),
                u32_at(record, set + 4),
                ATTR.align,
            )?;
            total = total.saturating_add(items.len().saturating_mul(ATTR_ITEM_COST));
            for item in items {
                if total > limit {
                    break;
                }
                total = total.saturating_add(encoding.host_bytes(u32_at(item, ATTR.name + 4)));
                let value = ATTR.value + ATTR_VALUE.payload;
                total = total.saturating_add(match item[ATTR.value] {
                    3 => encoding.host_bytes(u32_at(item, value + 4)),
                    4 => strings_cost(
                        memory,
                        u32_at(item, value),
                        u32_at(item, value + 4),
                        limit,
                        encoding,
                    )?,
                    _ => 0,
                });
            }
            Ok(total)
        }
        _ => Ok(0),
    }
}

/// What each outcome of the list at `ptr` costs the host, and what those
/// within the post limit cost together; an error when that is past what is
/// left of the batch's budget.
fn measure(
    memory: &[u8],
    ptr: u32,
    len: u32,
    limits: ResultLimits,
    encoding: Encoding,
) -> wasmtime::Result<(Vec<usize>, usize)> {
    // A wrong count fails the call before the host sizes anything by it: a
    // list of millions of outcomes for a batch of 100 costs nothing.
    if let Some(expected) = limits.outcomes
        && len as usize != expected
    {
        return Err(wasmtime::Error::msg(wrong_count(len as usize, expected)));
    }
    let items = list::<{ OUTCOME.size }>(memory, ptr, len, OUTCOME.align)?;
    let mut sizes = Vec::with_capacity(items.len());
    let mut total = 0usize;
    for item in items {
        let size = outcome_bytes(memory, item, limits.post_bytes, encoding)?;
        if size <= limits.post_bytes {
            total = total.saturating_add(size);
        }
        sizes.push(size);
    }
    if total.saturating_add(limits.spent) > limits.call_bytes {
        let earlier = match limits.spent {
            0 => String::new(),
            spent => format!(
                " with the {} KiB it returned for the batch's other posts",
                spent / 1024
            ),
        };
        return Err(wasmtime::Error::msg(format!(
            "returned {} KiB of strings and lists in one call, past its limit of {} KiB per batch{earlier} (`max_result_mb` of its [[plugins]] entry)",
            total / 1024,
            limits.call_bytes / 1024
        )));
    }
    Ok((sizes, total))
}

fn lift_list(memory: &[u8], ptr: u32, len: u32) -> wasmtime::Result<Outcomes> {
    let limits = LIMITS.get();
    let (sizes, total) = measure(memory, ptr, len, limits, Encoding::Utf8)?;
    LIMITS.set(ResultLimits {
        spent: limits.spent + total,
        ..limits
    });
    let items = list::<{ OUTCOME.size }>(memory, ptr, len, OUTCOME.align)?;
    let mut lifted = Outcomes {
        outcomes: Vec::with_capacity(items.len()),
        attrs: Vec::new(),
    };
    for (item, size) in items.zip(sizes) {
        let outcome = if size > limits.post_bytes {
            Outcome::Fail(post_limit(size, limits))
        } else {
            outcome(memory, item, &mut lifted.attrs)?
        };
        lifted.outcomes.push(outcome);
    }
    Ok(lifted)
}

/// The `len` records of `N` bytes at `ptr`, checked to lie in memory and to be
/// aligned to `align`.
fn list<const N: usize>(
    memory: &[u8],
    ptr: u32,
    len: u32,
    align: usize,
) -> wasmtime::Result<impl ExactSizeIterator<Item = &[u8; N]>> {
    let (ptr, len) = (ptr as usize, len as usize);
    if ptr % align != 0 {
        return Err(malformed("a list pointer is not aligned"));
    }
    let bytes = len
        .checked_mul(N)
        .and_then(|size| memory.get(ptr..)?.get(..size))
        .ok_or_else(|| malformed("a list lies outside the plugin's memory"))?;
    Ok(bytes
        .chunks_exact(N)
        .map(|item| item.try_into().expect("chunks are N bytes")))
}

fn u32_at<const N: usize>(record: &[u8; N], at: usize) -> u32 {
    u32::from_le_bytes(record[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at<const N: usize>(record: &[u8; N], at: usize) -> u64 {
    u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"))
}

/// The string whose pointer and length are at `at`.
fn string<const N: usize>(memory: &[u8], record: &[u8; N], at: usize) -> wasmtime::Result<String> {
    text(memory, record, at).map(str::to_owned)
}

/// The string whose pointer and length are at `at`, borrowed from memory.
fn text<'a, const N: usize>(
    memory: &'a [u8],
    record: &[u8; N],
    at: usize,
) -> wasmtime::Result<&'a str> {
    let (ptr, len) = (u32_at(record, at) as usize, u32_at(record, at + 4) as usize);
    let bytes = memory
        .get(ptr..)
        .and_then(|rest| rest.get(..len))
        .ok_or_else(|| malformed("a string lies outside the plugin's memory"))?;
    std::str::from_utf8(bytes).map_err(|_| malformed("a string is not UTF-8"))
}

/// How many attribute names a thread keeps for sharing; names past these
/// (a plugin making up names per post) are allocated each time.
const SHARED_NAMES: usize = 256;

thread_local! {
    static NAMES: RefCell<Vec<AttrName>> = const { RefCell::new(Vec::new()) };
}

/// `name` as a shared attribute name: the one this thread made before, if any.
fn attr_name(name: &str) -> AttrName {
    NAMES.with_borrow_mut(|names| {
        if let Some(shared) = names.iter().find(|shared| ***shared == *name) {
            return shared.clone();
        }
        let shared = AttrName::from(name);
        if names.len() < SHARED_NAMES {
            names.push(shared.clone());
        }
        shared
    })
}

/// The strings of the `list<string>` at `at`.
fn strings<const N: usize>(
    memory: &[u8],
    record: &[u8; N],
    at: usize,
) -> wasmtime::Result<Vec<String>> {
    let items = list::<STRING_SIZE>(memory, u32_at(record, at), u32_at(record, at + 4), 4)?;
    items.map(|item| string(memory, item, 0)).collect()
}

/// An `option` whose case byte is at `at` and payload at `at + payload`.
fn option<const N: usize, T>(
    record: &[u8; N],
    at: usize,
    payload: usize,
    some: impl FnOnce(usize) -> wasmtime::Result<T>,
) -> wasmtime::Result<Option<T>> {
    match record[at] {
        0 => Ok(None),
        1 => some(at + payload).map(Some),
        _ => Err(malformed("an option has an invalid case")),
    }
}

fn outcome(
    memory: &[u8],
    record: &[u8; OUTCOME.size],
    attrs: &mut Vec<(AttrName, AttrValue)>,
) -> wasmtime::Result<Outcome> {
    let at = OUTCOME.payload;
    Ok(match record[0] {
        0 => Outcome::Keep(option(record, at, OPTION_CHANGES_PAYLOAD, |at| {
            changes(memory, record, at, attrs)
        })?),
        1 => Outcome::Drop(string(memory, record, at)?),
        2 => Outcome::Fail(string(memory, record, at)?),
        _ => return Err(malformed("an outcome has an invalid case")),
    })
}

fn changes(
    memory: &[u8],
    record: &[u8; OUTCOME.size],
    at: usize,
    attrs: &mut Vec<(AttrName, AttrValue)>,
) -> wasmtime::Result<Changes> {
    let replaced = |field: usize| {
        option(record, at + field, OPTION_STRING_PAYLOAD, |at| {
            string(memory, record, at)
        })
    };
    let cleared_text = |field: usize| {
        option(record, at + field, OPTION_OPTION_PAYLOAD, |at| {
            option(record, at, OPTION_STRING_PAYLOAD, |at| {
                string(memory, record, at)
            })
        })
    };
    let texts = |field: usize| {
        option(record, at + field, OPTION_STRINGS_PAYLOAD, |at| {
            strings(memory, record, at)
        })
    };
    let set_attrs = {
        let at = at + CHANGES.set_attrs;
        let items = list::<{ ATTR.size }>(
            memory,
            u32_at(record, at),
            u32_at(record, at + 4),
            ATTR.align,
        )?;
        let count = items.len();
        attrs.reserve(count);
        for item in items {
            attrs.push(attr(memory, item)?);
        }
        count
    };
    Ok(Changes {
        text: replaced(CHANGES.text)?,
        lang: replaced(CHANGES.lang)?,
        author_id: replaced(CHANGES.author_id)?,
        author_username: replaced(CHANGES.author_username)?,
        author_name: replaced(CHANGES.author_name)?,
        author_location: cleared_text(CHANGES.author_location)?,
        mentions: texts(CHANGES.mentions)?,
        urls: texts(CHANGES.urls)?,
        in_reply_to_user_id: cleared_text(CHANGES.in_reply_to_user_id)?,
        set_attrs,
        remove_attrs: strings(memory, record, at + CHANGES.remove_attrs)?,
    })
}

fn attr(memory: &[u8], record: &[u8; ATTR.size]) -> wasmtime::Result<(AttrName, AttrValue)> {
    let name = attr_name(text(memory, record, ATTR.name)?);
    let at = ATTR.value + ATTR_VALUE.payload;
    let value = match record[ATTR.value] {
        0 => AttrValue::Bool(record[at] != 0),
        1 => AttrValue::Int(u64_at(record, at) as i64),
        2 => AttrValue::Float(f64::from_bits(u64_at(record, at))),
        3 => AttrValue::Str(string(memory, record, at)?),
        4 => AttrValue::List(strings(memory, record, at)?),
        _ => return Err(malformed("an attribute value has an invalid case")),
    };
    Ok((name, value))
}

const STRING_SIZE: usize = <String as ComponentType>::SIZE32;
const OPTION_STRING_PAYLOAD: usize = payload::<String>();
const OPTION_OPTION_PAYLOAD: usize = payload::<Option<String>>();
const OPTION_STRINGS_PAYLOAD: usize = payload::<Vec<String>>();
const OPTION_CHANGES_PAYLOAD: usize = payload::<wit::Changes>();

/// Where a variant's payload starts: after its one case byte (every variant
/// here has fewer than 256 cases), aligned to its most aligned case.
const fn variant_payload(align: u32) -> usize {
    1usize.next_multiple_of(align as usize)
}

/// A variant's size: its payload's place plus the largest payload, rounded up
/// to its alignment.
const fn variant_size(payload: usize, largest: usize, align: u32) -> usize {
    (payload + largest).next_multiple_of(align as usize)
}

struct VariantLayout {
    payload: usize,
    size: usize,
    align: usize,
}

/// `outcome`: `keep(option<changes>)`, `drop(string)`, `fail(string)`.
const OUTCOME: VariantLayout = {
    let keep = <Option<wit::Changes> as ComponentType>::ABI;
    let reason = <String as ComponentType>::ABI;
    let align = if keep.align32 > reason.align32 {
        keep.align32
    } else {
        reason.align32
    };
    let largest = if keep.size32 > reason.size32 {
        keep.size32
    } else {
        reason.size32
    };
    let payload = variant_payload(align);
    let layout = VariantLayout {
        payload,
        size: variant_size(payload, largest as usize, align),
        align: align as usize,
    };
    assert!(layout.size == <wit::Outcome as ComponentType>::SIZE32);
    assert!(layout.align == <wit::Outcome as ComponentType>::ALIGN32 as usize);
    layout
};

/// `attr-value`: `boolean`, `integer(s64)`, `float(f64)`, `text`, `texts`;
/// 64-bit numbers make it 8-aligned.
const ATTR_VALUE: VariantLayout = {
    let align = <i64 as ComponentType>::ALIGN32;
    let payload = variant_payload(align);
    let layout = VariantLayout {
        payload,
        size: variant_size(payload, <Vec<String> as ComponentType>::SIZE32, align),
        align: align as usize,
    };
    assert!(layout.size == <wit::AttrValue as ComponentType>::SIZE32);
    assert!(layout.align == <wit::AttrValue as ComponentType>::ALIGN32 as usize);
    layout
};

struct AttrLayout {
    name: usize,
    value: usize,
    size: usize,
    align: usize,
}

const ATTR: AttrLayout = {
    let mut fields = Fields::new();
    let mut layout = AttrLayout {
        name: fields.next::<String>(),
        value: fields.next::<wit::AttrValue>(),
        size: 0,
        align: <wit::Attr as ComponentType>::ALIGN32 as usize,
    };
    layout.size = fields.size();
    assert!(layout.size == <wit::Attr as ComponentType>::SIZE32);
    layout
};

struct ChangesLayout {
    text: usize,
    lang: usize,
    author_id: usize,
    author_username: usize,
    author_name: usize,
    author_location: usize,
    mentions: usize,
    urls: usize,
    in_reply_to_user_id: usize,
    set_attrs: usize,
    remove_attrs: usize,
}

/// The `changes` record's layout, in the order of its WIT fields; checked
/// against the size wasmtime derives for the record.
const CHANGES: ChangesLayout = {
    let mut fields = Fields::new();
    let layout = ChangesLayout {
        text: fields.next::<Option<String>>(),
        lang: fields.next::<Option<String>>(),
        author_id: fields.next::<Option<String>>(),
        author_username: fields.next::<Option<String>>(),
        author_name: fields.next::<Option<String>>(),
        author_location: fields.next::<Option<Option<String>>>(),
        mentions: fields.next::<Option<Vec<String>>>(),
        urls: fields.next::<Option<Vec<String>>>(),
        in_reply_to_user_id: fields.next::<Option<Option<String>>>(),
        set_attrs: fields.next::<Vec<wit::Attr>>(),
        remove_attrs: fields.next::<Vec<String>>(),
    };
    assert!(fields.size() == <wit::Changes as ComponentType>::SIZE32);
    layout
};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn put(memory: &mut [u8], at: usize, value: u32) {
        memory[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// A memory holding one outcome at 0: `drop("abc")`, the string at 512.
    fn one_drop() -> Vec<u8> {
        let mut memory = vec![0; 1024];
        memory[0] = 1;
        put(&mut memory, OUTCOME.payload, 512);
        put(&mut memory, OUTCOME.payload + 4, 3);
        memory[512..515].copy_from_slice(b"abc");
        memory
    }

    fn error(memory: &[u8], ptr: u32, len: u32) -> String {
        match lift_list(memory, ptr, len) {
            Ok(lifted) => panic!("lifted {lifted:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_well_formed_outcome_is_lifted() {
        let memory = one_drop();
        let lifted = lift_list(&memory, 0, 1).unwrap();
        assert_eq!(lifted.outcomes, [Outcome::Drop("abc".to_owned())]);
        assert!(lifted.attrs.is_empty());
        assert_eq!(lift_list(&memory, 0, 0).unwrap(), Outcomes::default());
    }

    #[test]
    fn a_keep_with_attributes_is_lifted() {
        let mut memory = vec![0; 1024];
        let changes = OUTCOME.payload + OPTION_CHANGES_PAYLOAD;
        memory[OUTCOME.payload] = 1;
        // lang = some("pt")
        memory[changes + CHANGES.lang] = 1;
        put(&mut memory, changes + CHANGES.lang + 4, 600);
        put(&mut memory, changes + CHANGES.lang + 8, 2);
        memory[600..602].copy_from_slice(b"pt");
        // set-attrs: [n = integer(-2), f = float(0.5)] at 512
        put(&mut memory, changes + CHANGES.set_attrs, 512);
        put(&mut memory, changes + CHANGES.set_attrs + 4, 2);
        for (index, (name, case, bits)) in
            [(b"n", 1, (-2_i64) as u64), (b"f", 2, 0.5_f64.to_bits())]
                .into_iter()
                .enumerate()
        {
            let at = 512 + index * ATTR.size;
            put(&mut memory, at, 700 + index as u32);
            put(&mut memory, at + 4, 1);
            memory[700 + index] = name[0];
            memory[at + ATTR.value] = case;
            let value = at + ATTR.value + ATTR_VALUE.payload;
            memory[value..value + 8].copy_from_slice(&bits.to_le_bytes());
        }
        let lifted = lift_list(&memory, 0, 1).unwrap();
        let changes = Changes {
            lang: Some("pt".to_owned()),
            set_attrs: 2,
            ..Changes::default()
        };
        assert_eq!(lifted.outcomes, [Outcome::Keep(Some(changes))]);
        assert_eq!(
            lifted.attrs,
            [
                (AttrName::from("n"), AttrValue::Int(-2)),
                (AttrName::from("f"), AttrValue::Float(0.5)),
            ]
        );
    }

    /// Issue 19: one guest buffer returned as every post's text became one
    /// host copy per post; the limits count it each time, before allocating.
    #[test]
    fn one_buffer_returned_for_every_post_counts_each_time() {
        let mut memory = vec![0; 4096];
        let text = OUTCOME.payload + OPTION_CHANGES_PAYLOAD + CHANGES.text;
        for index in 0..3 {
            let at = index * OUTCOME.size;
            memory[at + OUTCOME.payload] = 1;
            memory[at + text] = 1;
            put(&mut memory, at + text + OPTION_STRING_PAYLOAD, 2048);
            put(&mut memory, at + text + OPTION_STRING_PAYLOAD + 4, 1000);
        }
        memory[2048..3048].fill(b'y');
        let limited = |call_bytes, post_bytes| {
            with_limits(
                &mut ResultLimits {
                    call_bytes,
                    post_bytes,
                    spent: 0,
                    outcomes: None,
                },
                || lift_list(&memory, 0, 3),
            )
        };
        assert_eq!(limited(3000, 1000).unwrap().outcomes.len(), 3);
        let error = limited(2999, 1000).unwrap_err().to_string();
        assert!(error.contains("in one call"), "{error}");
        // Calls for one batch share the budget, and each adds what it returned.
        let mut budget = ResultLimits {
            call_bytes: 5000,
            post_bytes: 1000,
            spent: 0,
            outcomes: None,
        };
        assert!(with_limits(&mut budget, || lift_list(&memory, 0, 3)).is_ok());
        assert_eq!(budget.spent, 3000);
        let error = with_limits(&mut budget, || lift_list(&memory, 0, 3))
            .unwrap_err()
            .to_string();
        assert!(error.contains("other posts"), "{error}");
        assert_eq!(budget.spent, 3000);
        let lifted = limited(3000, 999).unwrap();
        assert!(
            lifted.outcomes.iter().all(
                |outcome| matches!(outcome, Outcome::Fail(reason) if reason.contains("one post"))
            ),
            "{lifted:?}"
        );
    }

    /// Issue 19: a list of outcomes far longer than the batch (here every
    /// byte of a 16 MiB memory) was measured, and a `Vec` sized by its length
    /// allocated, before its count was checked; the count is checked first.
    #[test]
    fn a_wrong_outcome_count_fails_before_anything_is_sized_by_it() {
        let memory = vec![0; 16 << 20];
        let len = u32::try_from(memory.len() / OUTCOME.size).unwrap();
        let counted = |outcomes| {
            with_limits(
                &mut ResultLimits {
                    outcomes,
                    ..ResultLimits::UNLIMITED
                },
                || lift_list(&memory, 0, len),
            )
        };
        let error = counted(Some(3)).unwrap_err().to_string();
        assert_eq!(error, format!("returned {len} outcomes for 3 posts"));
        // Without an expected count the same list is lifted whole.
        assert_eq!(counted(None).unwrap().outcomes.len(), len as usize);
    }

    /// Issue 19: one guest list of empty strings returned as every post's
    /// `mentions` cost the host a `String` per item per post while counting
    /// nothing against the limits; each item now counts what it costs.
    #[test]
    fn one_list_of_empty_strings_for_every_post_counts_its_items() {
        let mut memory = vec![0; 8192];
        let mentions = OUTCOME.payload + OPTION_CHANGES_PAYLOAD + CHANGES.mentions;
        for index in 0..3 {
            let at = index * OUTCOME.size;
            memory[at + OUTCOME.payload] = 1;
            memory[at + mentions] = 1;
            // 500 items of 8 zero bytes (empty strings) at 2048.
            put(&mut memory, at + mentions + OPTION_STRINGS_PAYLOAD, 2048);
            put(&mut memory, at + mentions + OPTION_STRINGS_PAYLOAD + 4, 500);
        }
        let per_post = 500 * STRING_ITEM_COST;
        let limited = |call_bytes, post_bytes| {
            with_limits(
                &mut ResultLimits {
                    call_bytes,
                    post_bytes,
                    spent: 0,
                    outcomes: None,
                },
                || lift_list(&memory, 0, 3),
            )
        };
        let lifted = limited(3 * per_post, per_post).unwrap();
        assert!(matches!(&lifted.outcomes[2], Outcome::Keep(Some(changes))
            if changes.mentions.as_ref().is_some_and(|mentions| mentions.len() == 500)));
        let error = limited(3 * per_post - 1, per_post).unwrap_err().to_string();
        assert!(error.contains("in one call"), "{error}");
        let lifted = limited(3 * per_post, per_post - 1).unwrap();
        assert!(
            lifted
                .outcomes
                .iter()
                .all(|outcome| matches!(outcome, Outcome::Fail(_))),
            "{lifted:?}"
        );
    }

    #[test]
    fn attribute_names_are_shared_up_to_a_bound() {
        let first = attr_name("shared_name");
        assert!(Arc::ptr_eq(&first, &attr_name("shared_name")));
        // Past the bound, names still come out right, only unshared.
        let made_up: Vec<_> = (0..SHARED_NAMES + 10)
            .map(|index| attr_name(&format!("made_up_{index}")))
            .collect();
        let last = format!("made_up_{}", SHARED_NAMES + 9);
        assert_eq!(&*made_up[SHARED_NAMES + 9], last);
        assert!(!Arc::ptr_eq(&made_up[SHARED_NAMES + 9], &attr_name(&last)));
        assert!(Arc::ptr_eq(&first, &attr_name("shared_name")));
    }

    #[test]
    fn malformed_outcomes_are_refused_as_wasmtime_refuses_them() {
        let memory = one_drop();
        assert!(error(&memory, 2, 1).contains("not aligned"));
        assert!(error(&memory, 1020, 1).contains("outside"));
        assert!(error(&memory, 0, u32::MAX).contains("outside"));

        let mut bad = memory.clone();
        bad[0] = 3;
        assert!(error(&bad, 0, 1).contains("invalid case"));

        let mut bad = memory.clone();
        put(&mut bad, OUTCOME.payload + 4, 600);
        assert!(error(&bad, 0, 1).contains("string lies outside"));

        let mut bad = memory.clone();
        bad[512] = 0xff;
        assert!(error(&bad, 0, 1).contains("not UTF-8"));

        let mut bad = memory;
        bad[0] = 0;
        bad[OUTCOME.payload] = 2;
        assert!(error(&bad, 0, 1).contains("option has an invalid case"));
    }

    #[test]
    fn the_outcome_layout_is_the_canonical_one() {
        // Worked out by hand from the canonical ABI's rules for the WIT types.
        assert_eq!([OUTCOME.payload, OUTCOME.size], [4, 140]);
        assert_eq!(
            [
                CHANGES.text,
                CHANGES.author_location,
                CHANGES.mentions,
                CHANGES.in_reply_to_user_id,
                CHANGES.set_attrs,
                CHANGES.remove_attrs,
            ],
            [0, 60, 76, 100, 116, 124]
        );
        assert_eq!([ATTR.value, ATTR.size, ATTR_VALUE.payload], [8, 24, 8]);
        assert_eq!(
            [
                OPTION_STRING_PAYLOAD,
                OPTION_OPTION_PAYLOAD,
                OPTION_CHANGES_PAYLOAD
            ],
            [4, 4, 4]
        );
    }
}
