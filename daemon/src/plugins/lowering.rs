//! Writing a batch into a plugin's memory field by field costs wasmtime a
//! memory lookup and a bounds check per field, more than the guest spends on a
//! simple post. This module lowers the batch's hot lists itself: each post
//! record in one bounds-checked write of its canonical-ABI bytes, the span
//! table as one copy. Everything else (the record around them, attributes)
//! keeps wasmtime's own lowering.
//!
//! The types implement wasmtime's `ComponentType` and `Lower` by hand, through
//! hidden items of its API; they type-check as exactly the WIT records they
//! stand for, so a plugin built against another contract is refused as before.
//! `wasmtime` is pinned to one release in the workspace for this reason, and
//! the tests send every field through a real plugin and compare what it saw.

// The trait implementations below are `unsafe` by wasmtime's definition; the
// code in them is safe Rust writing into a bounds-checked slice.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};

use super::bindings as wit;

/// The argument of the contract's `process`: the `batch` record.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct Batch {
    pub(crate) text: String,
    pub(crate) strings: Vec<SpanItem>,
    pub(crate) rules: Vec<wit::MatchingRule>,
    pub(crate) posts: Vec<PostRecord>,
}

impl Batch {
    /// An empty batch, its buffers to be reused call after call.
    pub(crate) fn new() -> Batch {
        Batch {
            text: String::new(),
            strings: Vec::new(),
            rules: Vec::new(),
            posts: Vec::new(),
        }
    }

    /// Empties the batch, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.strings.clear();
        self.rules.clear();
        self.posts.clear();
    }
}

/// One `span` of the batch's string table; a list of them is lowered as one
/// copy.
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub(crate) struct SpanItem(pub(crate) wit::Span);

// SAFETY: the ABI, flat form and type check are those of `wit::Span`, the
// derived implementation of the same WIT record.
unsafe impl ComponentType for SpanItem {
    type Lower = <wit::Span as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <wit::Span as ComponentType>::ABI;
    const MAY_REQUIRE_REALLOC: bool = false;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <wit::Span as ComponentType>::typecheck(ty, types)
    }
}

const SPAN_SIZE: usize = <wit::Span as ComponentType>::SIZE32;
const SPAN_LEN_AT: usize = span_len_offset();

// SAFETY: writes exactly the canonical-ABI bytes of `wit::Span` (two
// little-endian `u32`s) inside the bounds wasmtime allotted to the value.
unsafe impl Lower for SpanItem {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let out = slot::<SPAN_SIZE, T>(cx, offset)?;
        put_span(out, 0, self.0);
        Ok(())
    }

    fn linear_store_list_to_memory<T>(
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
        items: &[Self],
    ) -> wasmtime::Result<()> {
        let size = items.len() * SPAN_SIZE;
        let out = cx
            .as_slice_mut()
            .get_mut(offset..)
            .and_then(|memory| memory.get_mut(..size))
            .ok_or_else(out_of_bounds)?;
        for (out, item) in out.chunks_exact_mut(SPAN_SIZE).zip(items) {
            let out: &mut [u8; SPAN_SIZE] = out.try_into().expect("chunks are SPAN_SIZE bytes");
            put_span(out, 0, item.0);
        }
        Ok(())
    }
}

/// One `post` record of a batch, written in one piece when it carries no
/// attributes (the attributes need the plugin's allocator: wasmtime lowers a
/// post that has them).
#[derive(Debug, Clone)]
#[repr(transparent)]
pub(crate) struct PostRecord(pub(crate) wit::Post);

// SAFETY: the ABI, flat form and type check are those of `wit::Post`, the
// derived implementation of the same WIT record.
unsafe impl ComponentType for PostRecord {
    type Lower = <wit::Post as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <wit::Post as ComponentType>::ABI;
    const MAY_REQUIRE_REALLOC: bool = <wit::Post as ComponentType>::MAY_REQUIRE_REALLOC;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <wit::Post as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: writes exactly the canonical-ABI bytes of `wit::Post` (the layout
// below, checked against wasmtime's size for the record) inside the bounds
// wasmtime allotted to the value; a post with attributes is lowered by
// wasmtime itself.
unsafe impl Lower for PostRecord {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        if self.0.attrs.is_some() {
            return self.0.linear_lower_to_memory(cx, ty, offset);
        }
        let out = slot::<{ POST.size }, T>(cx, offset)?;
        write_post(out, &self.0);
        Ok(())
    }
}

/// The `N` bytes of guest memory at `offset`.
fn slot<'a, const N: usize, T: 'static>(
    cx: &'a mut LowerContext<'_, T>,
    offset: usize,
) -> wasmtime::Result<&'a mut [u8; N]> {
    cx.as_slice_mut()
        .get_mut(offset..)
        .and_then(<[u8]>::first_chunk_mut)
        .ok_or_else(out_of_bounds)
}

fn out_of_bounds() -> wasmtime::Error {
    wasmtime::Error::msg("a batch value lies outside the plugin's memory")
}

fn put<const N: usize, const M: usize>(out: &mut [u8; M], at: usize, bytes: [u8; N]) {
    out[at..at + N].copy_from_slice(&bytes);
}

fn put_span<const M: usize>(out: &mut [u8; M], at: usize, span: wit::Span) {
    put(out, at, span.start.to_le_bytes());
    put(out, at + SPAN_LEN_AT, span.len.to_le_bytes());
}

fn put_range<const M: usize>(out: &mut [u8; M], at: usize, range: wit::Range) {
    put_span(
        out,
        at,
        wit::Span {
            start: range.start,
            len: range.len,
        },
    );
}

/// Writes an `option`'s case byte; the payload, when there is one, is written
/// by the caller.
fn put_case<const M: usize>(out: &mut [u8; M], at: usize, some: bool) {
    out[at] = u8::from(some);
}

fn write_post(out: &mut [u8; POST.size], post: &wit::Post) {
    put_span(out, POST.id, post.id);
    put_case(out, POST.created_at, post.created_at.is_some());
    if let Some(time) = post.created_at {
        put(
            out,
            POST.created_at + POST.created_at_payload,
            time.to_le_bytes(),
        );
    }
    put_span(out, POST.text, post.text);
    put_span(out, POST.lang, post.lang);
    put_case(out, POST.author, post.author.is_some());
    if let Some(author) = &post.author {
        let at = POST.author + POST.author_payload;
        put_span(out, at + AUTHOR.id, author.id);
        put_span(out, at + AUTHOR.username, author.username);
        put_span(out, at + AUTHOR.name, author.name);
        put_span(out, at + AUTHOR.location, author.location);
        put(out, at + AUTHOR.followers, author.followers.to_le_bytes());
        out[at + AUTHOR.verified] = u8::from(author.verified);
    }
    put_case(out, POST.metrics, post.metrics.is_some());
    if let Some(metrics) = &post.metrics {
        let at = POST.metrics + POST.metrics_payload;
        put(out, at + METRICS.retweets, metrics.retweets.to_le_bytes());
        put(out, at + METRICS.likes, metrics.likes.to_le_bytes());
        put(out, at + METRICS.replies, metrics.replies.to_le_bytes());
        put(out, at + METRICS.quotes, metrics.quotes.to_le_bytes());
    }
    put_range(out, POST.hashtags, post.hashtags);
    put_range(out, POST.mentions, post.mentions);
    put_range(out, POST.cashtags, post.cashtags);
    put_range(out, POST.urls, post.urls);
    put_case(out, POST.place, post.place.is_some());
    if let Some(place) = &post.place {
        let at = POST.place + POST.place_payload;
        put_span(out, at + PLACE.id, place.id);
        put_span(out, at + PLACE.full_name, place.full_name);
        put_span(out, at + PLACE.country_code, place.country_code);
    }
    out[POST.is_retweet] = u8::from(post.is_retweet);
    out[POST.is_reply] = u8::from(post.is_reply);
    out[POST.is_quote] = u8::from(post.is_quote);
    out[POST.has_media] = u8::from(post.has_media);
    put_span(out, POST.in_reply_to_user_id, post.in_reply_to_user_id);
    put_range(out, POST.matching_rules, post.matching_rules);
    put_case(out, POST.attrs, false);
}

/// Canonical-ABI layout: fields in order, each at the next multiple of its
/// alignment; the record's size rounded up to its largest alignment.
pub(super) struct Fields {
    offset: usize,
    align: usize,
}

impl Fields {
    pub(super) const fn new() -> Fields {
        Fields {
            offset: 0,
            align: 1,
        }
    }

    /// Places a field of type `F`; its offset.
    pub(super) const fn next<F: ComponentType>(&mut self) -> usize {
        let align = F::ALIGN32 as usize;
        let at = self.offset.next_multiple_of(align);
        self.offset = at + F::SIZE32;
        if align > self.align {
            self.align = align;
        }
        at
    }

    pub(super) const fn size(&self) -> usize {
        self.offset.next_multiple_of(self.align)
    }
}

/// Where an `option<F>`'s payload starts: after its one case byte, aligned.
pub(super) const fn payload<F: ComponentType>() -> usize {
    1usize.next_multiple_of(F::ALIGN32 as usize)
}

const fn span_len_offset() -> usize {
    let mut fields = Fields::new();
    fields.next::<u32>();
    fields.next::<u32>()
}

struct AuthorLayout {
    id: usize,
    username: usize,
    name: usize,
    location: usize,
    followers: usize,
    verified: usize,
}

const AUTHOR: AuthorLayout = {
    let mut fields = Fields::new();
    let layout = AuthorLayout {
        id: fields.next::<wit::Span>(),
        username: fields.next::<wit::Span>(),
        name: fields.next::<wit::Span>(),
        location: fields.next::<wit::Span>(),
        followers: fields.next::<u64>(),
        verified: fields.next::<bool>(),
    };
    assert!(fields.size() == <wit::Author as ComponentType>::SIZE32);
    layout
};

struct MetricsLayout {
    retweets: usize,
    likes: usize,
    replies: usize,
    quotes: usize,
}

const METRICS: MetricsLayout = {
    let mut fields = Fields::new();
    let layout = MetricsLayout {
        retweets: fields.next::<u64>(),
        likes: fields.next::<u64>(),
        replies: fields.next::<u64>(),
        quotes: fields.next::<u64>(),
    };
    assert!(fields.size() == <wit::Metrics as ComponentType>::SIZE32);
    layout
};

struct PlaceLayout {
    id: usize,
    full_name: usize,
    country_code: usize,
}

const PLACE: PlaceLayout = {
    let mut fields = Fields::new();
    let layout = PlaceLayout {
        id: fields.next::<wit::Span>(),
        full_name: fields.next::<wit::Span>(),
        country_code: fields.next::<wit::Span>(),
    };
    assert!(fields.size() == <wit::Place as ComponentType>::SIZE32);
    layout
};

struct PostLayout {
    id: usize,
    created_at: usize,
    created_at_payload: usize,
    text: usize,
    lang: usize,
    author: usize,
    author_payload: usize,
    metrics: usize,
    metrics_payload: usize,
    hashtags: usize,
    mentions: usize,
    cashtags: usize,
    urls: usize,
    place: usize,
    place_payload: usize,
    is_retweet: usize,
    is_reply: usize,
    is_quote: usize,
    has_media: usize,
    in_reply_to_user_id: usize,
    matching_rules: usize,
    attrs: usize,
    size: usize,
}

/// The `post` record's layout, in the order of its WIT fields; checked against
/// the size wasmtime derives for the record, and field by field by the tests.
const POST: PostLayout = {
    let mut fields = Fields::new();
    let mut layout = PostLayout {
        id: fields.next::<wit::Span>(),
        created_at: fields.next::<Option<i64>>(),
        created_at_payload: payload::<i64>(),
        text: fields.next::<wit::Span>(),
        lang: fields.next::<wit::Span>(),
        author: fields.next::<Option<wit::Author>>(),
        author_payload: payload::<wit::Author>(),
        metrics: fields.next::<Option<wit::Metrics>>(),
        metrics_payload: payload::<wit::Metrics>(),
        hashtags: fields.next::<wit::Range>(),
        mentions: fields.next::<wit::Range>(),
        cashtags: fields.next::<wit::Range>(),
        urls: fields.next::<wit::Range>(),
        place: fields.next::<Option<wit::Place>>(),
        place_payload: payload::<wit::Place>(),
        is_retweet: fields.next::<bool>(),
        is_reply: fields.next::<bool>(),
        is_quote: fields.next::<bool>(),
        has_media: fields.next::<bool>(),
        in_reply_to_user_id: fields.next::<wit::Span>(),
        matching_rules: fields.next::<wit::Range>(),
        attrs: fields.next::<Option<Vec<wit::Attr>>>(),
        size: 0,
    };
    layout.size = fields.size();
    assert!(layout.size == <wit::Post as ComponentType>::SIZE32);
    layout
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_post_layout_is_the_canonical_one() {
        // Worked out by hand from the canonical ABI's rules for the WIT record.
        assert_eq!(
            [
                POST.id,
                POST.created_at,
                POST.text,
                POST.lang,
                POST.author,
                POST.metrics,
                POST.hashtags,
                POST.place,
                POST.is_retweet,
                POST.has_media,
                POST.in_reply_to_user_id,
                POST.matching_rules,
                POST.attrs,
                POST.size,
            ],
            [0, 8, 24, 32, 40, 96, 136, 168, 196, 199, 200, 208, 216, 232]
        );
        assert_eq!(
            [
                POST.created_at_payload,
                POST.author_payload,
                POST.place_payload
            ],
            [8, 8, 4]
        );
        assert_eq!([AUTHOR.followers, AUTHOR.verified], [32, 40]);
        assert_eq!(SPAN_LEN_AT, 4);
    }
}
