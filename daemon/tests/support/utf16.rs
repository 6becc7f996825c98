//! A plugin whose component chose UTF-16 strings (the canonical ABI lets it;
//! our SDKs and wit-bindgen always choose UTF-8), written in the component
//! text format against the bare contract, so the host's other lifting path is
//! attacked too: every outcome is `keep` with a new text, and every one of
//! those texts points at the same region of the plugin's memory.

use std::path::{Path, PathBuf};

/// Where the shared text starts in the plugin's memory.
const TEXT_AT: u32 = 64 * 1024;
/// The most posts one call may hold (the outcome area is sized for them).
const MAX_POSTS: u32 = 4096;
/// `outcome`'s size in the canonical ABI (4-aligned; `lifting.rs` checks it).
const OUTCOME_SIZE: u32 = 140;

/// What the shared text is made of.
pub enum Text {
    /// These characters (UTF-16 code units of the BMP).
    Chars(&'static str),
    /// `units` code units of U+7A7A, three bytes each in UTF-8.
    Filled { units: u32 },
}

/// Writes the component to `dir` and returns its path.
pub fn plugin(dir: &Path, text: &Text) -> PathBuf {
    let wat = component(text);
    let binary = wat::parse_str(&wat).unwrap_or_else(|error| panic!("the UTF-16 plugin: {error}"));
    let path = dir.join("utf16.wasm");
    std::fs::write(&path, binary).expect("writing the UTF-16 plugin");
    path
}

/// `text` as the bytes of a WAT data string, UTF-16LE.
fn utf16_data(text: &str) -> String {
    text.encode_utf16()
        .flat_map(u16::to_le_bytes)
        .map(|byte| format!("\\{byte:02x}"))
        .collect()
}

fn component(text: &Text) -> String {
    let (units, data, fill) = match text {
        Text::Chars(chars) => (
            chars.encode_utf16().count() as u32,
            format!("(data (i32.const {TEXT_AT}) \"{}\")", utf16_data(chars)),
            String::new(),
        ),
        Text::Filled { units } => (
            *units,
            String::new(),
            format!(
                "(memory.fill (i32.const {TEXT_AT}) (i32.const 0x7a) (i32.const {}))",
                units * 2
            ),
        ),
    };
    let outcomes_at = (TEXT_AT + units * 2 + 7) & !7;
    let heap_at = (outcomes_at + MAX_POSTS * OUTCOME_SIZE + 0xffff) & !0xffff;
    let pages = heap_at / 0x10000 + 16;
    let name = utf16_data("utf16");
    let version = utf16_data("0.1.0");
    format!(
        r#"(component
  (core module $m
    (memory (export "memory") {pages})
    (global $heap (mut i32) (i32.const {heap_at}))
    (data (i32.const 256) "{name}")
    (data (i32.const 320) "{version}")
    {data}
    (func $realloc (export "cabi_realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $at i32) (local $end i32)
      (local.set $at (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $at) (local.get $size)))
      (block $room
        (loop $grow
          (br_if $room (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
          (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
          (br $grow)))
      (if (local.get $old)
        (then (memory.copy (local.get $at) (local.get $old) (local.get $old_size))))
      (global.set $heap (local.get $end))
      (local.get $at))
    ;; plugin-info {{ name, version, reads: text }} at 0.
    (func (export "info") (result i32)
      (i32.store (i32.const 0) (i32.const 256))
      (i32.store (i32.const 4) (i32.const 5))
      (i32.store (i32.const 8) (i32.const 320))
      (i32.store (i32.const 12) (i32.const 5))
      (i32.store16 (i32.const 16) (i32.const 1))
      (i32.const 0))
    ;; ok at 32.
    (func (export "init") (param i32 i32) (result i32)
      {fill}
      (global.set $heap (i32.const {heap_at}))
      (i32.store8 (i32.const 32) (i32.const 0))
      (i32.const 32))
    ;; One `keep(some(changes {{ text: some(the shared text) }}))` per post,
    ;; the list's pointer and length at 48.
    (func (export "process")
      (param i32 i32 i32 i32 i32 i32 i32) (param $posts i32) (result i32)
      (local $i i32) (local $at i32)
      (if (i32.gt_u (local.get $posts) (i32.const {MAX_POSTS})) (then unreachable))
      (memory.fill (i32.const {outcomes_at}) (i32.const 0)
        (i32.mul (local.get $posts) (i32.const {OUTCOME_SIZE})))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $posts)))
          (local.set $at (i32.add (i32.const {outcomes_at})
            (i32.mul (local.get $i) (i32.const {OUTCOME_SIZE}))))
          (i32.store8 offset=4 (local.get $at) (i32.const 1))
          (i32.store8 offset=8 (local.get $at) (i32.const 1))
          (i32.store offset=12 (local.get $at) (i32.const {TEXT_AT}))
          (i32.store offset=16 (local.get $at) (i32.const {units}))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
      (global.set $heap (i32.const {heap_at}))
      (i32.store (i32.const 48) (i32.const {outcomes_at}))
      (i32.store (i32.const 52) (local.get $posts))
      (i32.const 48))
  )
  (core instance $i (instantiate $m))

  (type $attr-value' (variant (case "boolean" bool) (case "integer" s64) (case "float" float64)
    (case "text" string) (case "texts" (list string))))
  (export $attr-value "attr-value" (type $attr-value'))
  (type $attr' (record (field "name" string) (field "value" $attr-value)))
  (export $attr "attr" (type $attr'))
  (type $span' (record (field "start" u32) (field "len" u32)))
  (export $span "span" (type $span'))
  (type $range' (record (field "start" u32) (field "len" u32)))
  (export $range "range" (type $range'))
  (type $author' (record (field "id" $span) (field "username" $span) (field "name" $span)
    (field "location" $span) (field "followers" u64) (field "verified" bool)))
  (export $author "author" (type $author'))
  (type $metrics' (record (field "retweets" u64) (field "likes" u64) (field "replies" u64)
    (field "quotes" u64)))
  (export $metrics "metrics" (type $metrics'))
  (type $place' (record (field "id" $span) (field "full-name" $span) (field "country-code" $span)))
  (export $place "place" (type $place'))
  (type $matching-rule' (record (field "id" $span) (field "tag" $span)))
  (export $matching-rule "matching-rule" (type $matching-rule'))
  (type $fields' (flags "text" "lang" "author" "metrics" "entities" "place" "kind" "rules" "attrs"))
  (export $fields "fields" (type $fields'))
  (type $post' (record (field "id" $span) (field "created-at" (option s64)) (field "text" $span)
    (field "lang" $span) (field "author" (option $author)) (field "metrics" (option $metrics))
    (field "hashtags" $range) (field "mentions" $range) (field "cashtags" $range)
    (field "urls" $range) (field "place" (option $place)) (field "is-retweet" bool)
    (field "is-reply" bool) (field "is-quote" bool) (field "has-media" bool)
    (field "in-reply-to-user-id" $span) (field "matching-rules" $range)
    (field "attrs" (option (list $attr)))))
  (export $post "post" (type $post'))
  (type $batch' (record (field "text" string) (field "strings" (list $span))
    (field "rules" (list $matching-rule)) (field "posts" (list $post))))
  (export $batch "batch" (type $batch'))
  (type $changes' (record (field "text" (option string)) (field "lang" (option string))
    (field "author-id" (option string)) (field "author-username" (option string))
    (field "author-name" (option string)) (field "author-location" (option (option string)))
    (field "mentions" (option (list string))) (field "urls" (option (list string)))
    (field "in-reply-to-user-id" (option (option string))) (field "set-attrs" (list $attr))
    (field "remove-attrs" (list string))))
  (export $changes "changes" (type $changes'))
  (type $outcome' (variant (case "keep" (option $changes)) (case "drop" string) (case "fail" string)))
  (export $outcome "outcome" (type $outcome'))
  (type $plugin-info' (record (field "name" string) (field "version" string) (field "reads" $fields)))
  (export $plugin-info "plugin-info" (type $plugin-info'))

  (func $info (result $plugin-info)
    (canon lift (core func $i "info") string-encoding=utf16 (memory (core memory $i "memory"))
      (realloc (core func $i "cabi_realloc"))))
  (func $init (param "config" string) (result (result (error string)))
    (canon lift (core func $i "init") string-encoding=utf16 (memory (core memory $i "memory"))
      (realloc (core func $i "cabi_realloc"))))
  (func $process (param "batch" $batch) (result (list $outcome))
    (canon lift (core func $i "process") string-encoding=utf16 (memory (core memory $i "memory"))
      (realloc (core func $i "cabi_realloc"))))
  (instance $processor
    (export "attr-value" (type $attr-value))
    (export "attr" (type $attr))
    (export "span" (type $span))
    (export "range" (type $range))
    (export "author" (type $author))
    (export "metrics" (type $metrics))
    (export "place" (type $place))
    (export "matching-rule" (type $matching-rule))
    (export "fields" (type $fields))
    (export "post" (type $post))
    (export "batch" (type $batch))
    (export "changes" (type $changes))
    (export "outcome" (type $outcome))
    (export "plugin-info" (type $plugin-info))
    (export "info" (func $info))
    (export "init" (func $init))
    (export "process" (func $process)))
  (export "tweetpipe:plugin/processor@0.3.0" (instance $processor))
)"#
    )
}
