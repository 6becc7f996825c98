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
//! choose UTF-16) is lifted by wasmtime itself.

// The trait implementations below are `unsafe` by wasmtime's definition; the
// code in them is safe Rust reading a bounds-checked slice.
#![allow(unsafe_code)]

use wasmtime::ValRaw;
use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};

use super::bindings as wit;
use super::lowering::{Fields, payload};

/// What `process` returns: one outcome per post, lifted in one pass.
#[derive(Debug)]
pub(crate) struct Outcomes(pub(crate) Vec<wit::Outcome>);

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
        if !utf8(cx) {
            return Vec::<wit::Outcome>::linear_lift_from_flat(cx, ty, src).map(Outcomes);
        }
        let [ptr, len]: &[ValRaw; 2] = src;
        lift_list(cx.memory(), ptr.get_u32(), len.get_u32()).map(Outcomes)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        if !utf8(cx) {
            return Vec::<wit::Outcome>::linear_lift_from_memory(cx, ty, bytes).map(Outcomes);
        }
        let pair: &[u8; 8] = bytes
            .first_chunk()
            .ok_or_else(|| malformed("the outcome list's pointer is cut short"))?;
        lift_list(cx.memory(), u32_at(pair, 0), u32_at(pair, 4)).map(Outcomes)
    }
}

fn utf8(cx: &LiftContext<'_>) -> bool {
    matches!(cx.options().string_encoding, StringEncoding::Utf8)
}

fn malformed(what: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("the plugin returned malformed outcomes: {what}"))
}

fn lift_list(memory: &[u8], ptr: u32, len: u32) -> wasmtime::Result<Vec<wit::Outcome>> {
    let items = list::<{ OUTCOME.size }>(memory, ptr, len, OUTCOME.align)?;
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        outcomes.push(outcome(memory, item)?);
    }
    Ok(outcomes)
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
    let (ptr, len) = (u32_at(record, at) as usize, u32_at(record, at + 4) as usize);
    let bytes = memory
        .get(ptr..)
        .and_then(|rest| rest.get(..len))
        .ok_or_else(|| malformed("a string lies outside the plugin's memory"))?;
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("a string is not UTF-8"))?;
    Ok(text.to_owned())
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

fn outcome(memory: &[u8], record: &[u8; OUTCOME.size]) -> wasmtime::Result<wit::Outcome> {
    let at = OUTCOME.payload;
    Ok(match record[0] {
        0 => wit::Outcome::Keep(option(record, at, OPTION_CHANGES_PAYLOAD, |at| {
            changes(memory, record, at)
        })?),
        1 => wit::Outcome::Drop(string(memory, record, at)?),
        2 => wit::Outcome::Fail(string(memory, record, at)?),
        _ => return Err(malformed("an outcome has an invalid case")),
    })
}

fn changes(
    memory: &[u8],
    record: &[u8; OUTCOME.size],
    at: usize,
) -> wasmtime::Result<wit::Changes> {
    let text = |field: usize| {
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
        let mut attrs = Vec::with_capacity(items.len());
        for item in items {
            attrs.push(attr(memory, item)?);
        }
        attrs
    };
    Ok(wit::Changes {
        text: text(CHANGES.text)?,
        lang: text(CHANGES.lang)?,
        author_id: text(CHANGES.author_id)?,
        author_username: text(CHANGES.author_username)?,
        author_name: text(CHANGES.author_name)?,
        author_location: cleared_text(CHANGES.author_location)?,
        mentions: texts(CHANGES.mentions)?,
        urls: texts(CHANGES.urls)?,
        in_reply_to_user_id: cleared_text(CHANGES.in_reply_to_user_id)?,
        set_attrs,
        remove_attrs: strings(memory, record, at + CHANGES.remove_attrs)?,
    })
}

fn attr(memory: &[u8], record: &[u8; ATTR.size]) -> wasmtime::Result<wit::Attr> {
    let name = string(memory, record, ATTR.name)?;
    let at = ATTR.value + ATTR_VALUE.payload;
    let value = match record[ATTR.value] {
        0 => wit::AttrValue::Boolean(record[at] != 0),
        1 => wit::AttrValue::Integer(u64_at(record, at) as i64),
        2 => wit::AttrValue::Float(f64::from_bits(u64_at(record, at))),
        3 => wit::AttrValue::Text(string(memory, record, at)?),
        4 => wit::AttrValue::Texts(strings(memory, record, at)?),
        _ => return Err(malformed("an attribute value has an invalid case")),
    };
    Ok(wit::Attr { name, value })
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
            Ok(outcomes) => panic!("lifted {outcomes:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_well_formed_outcome_is_lifted() {
        let memory = one_drop();
        let outcomes = lift_list(&memory, 0, 1).unwrap();
        assert!(matches!(&outcomes[..], [wit::Outcome::Drop(reason)] if reason == "abc"));
        assert!(lift_list(&memory, 0, 0).unwrap().is_empty());
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
        let outcomes = lift_list(&memory, 0, 1).unwrap();
        let [wit::Outcome::Keep(Some(changes))] = &outcomes[..] else {
            panic!("{outcomes:?}");
        };
        assert_eq!(changes.lang.as_deref(), Some("pt"));
        assert_eq!(changes.text, None);
        assert_eq!(changes.author_location, None);
        assert!(changes.remove_attrs.is_empty());
        let attrs: Vec<_> = changes
            .set_attrs
            .iter()
            .map(|attr| (attr.name.as_str(), format!("{:?}", attr.value)))
            .collect();
        assert_eq!(
            attrs,
            [
                ("n", "AttrValue::Integer(-2)".to_owned()),
                ("f", "AttrValue::Float(0.5)".to_owned())
            ]
        );
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
