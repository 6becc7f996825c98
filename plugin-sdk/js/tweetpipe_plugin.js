// Write a tweetpipe plugin in a few lines of JavaScript.
//
// Wrap one function with `filter`, `map` or `filter_map` (the Rust SDK's
// names), export the result as
// `processor`, and build the module into a WebAssembly component with
// componentize-js against the contract in `wit/`. The SDK loops over each
// batch inside the plugin, reads every post out of the batch's shared string
// buffer into a `Post` (lazily: a field is decoded the first time it is read)
// and sends back only what changed.
//
//     import { filter } from "./tweetpipe_plugin.js";
//     export const processor = filter(function only_english(post) {
//       return post.lang === "en" && post.urls.length > 0;
//     });

/** The version of the contract this SDK builds plugins for. */
export const CONTRACT_VERSION = "0.3.0";

const FIELD_GROUPS = {
  text: "text",
  lang: "lang",
  author: "author",
  metrics: "metrics",
  entities: "entities",
  hashtags: "entities",
  mentions: "entities",
  cashtags: "entities",
  urls: "entities",
  place: "place",
  kind: "kind",
  created_at: "kind",
  is_retweet: "kind",
  is_reply: "kind",
  is_quote: "kind",
  has_media: "kind",
  in_reply_to_user_id: "kind",
  rules: "rules",
  matching_rules: "rules",
  attrs: "attrs",
};

const ASCII = /^[\x00-\x7f]*$/;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The storage of one batch, which its posts point into with byte spans. */
class Storage {
  constructor(batch) {
    this.text = batch.text;
    // Byte offsets are UTF-16 offsets when the buffer is ASCII, which spares
    // encoding the buffer and decoding every string.
    this.ascii = ASCII.test(batch.text);
    this.raw = this.ascii ? null : encoder.encode(batch.text);
    this.strings = batch.strings;
    this.rules = batch.rules;
  }

  str(span) {
    if (this.ascii) return this.text.substr(span.start, span.len);
    return decoder.decode(this.raw.subarray(span.start, span.start + span.len));
  }

  optional(span) {
    return span.len ? this.str(span) : null;
  }

  strs(range) {
    const out = [];
    for (let i = range.start; i < range.start + range.len; i++) out.push(this.str(this.strings[i]));
    return out;
  }
}

const READERS = {
  id: (s, w) => s.str(w.id),
  text: (s, w) => s.str(w.text),
  lang: (s, w) => s.str(w.lang),
  author: (s, w) =>
    w.author
      ? new Author({
          id: s.str(w.author.id),
          username: s.str(w.author.username),
          name: s.str(w.author.name),
          location: s.optional(w.author.location),
          followers: Number(w.author.followers),
          verified: w.author.verified,
        })
      : new Author(),
  metrics: (s, w) =>
    w.metrics
      ? {
          retweets: Number(w.metrics.retweets),
          likes: Number(w.metrics.likes),
          replies: Number(w.metrics.replies),
          quotes: Number(w.metrics.quotes),
        }
      : { retweets: 0, likes: 0, replies: 0, quotes: 0 },
  hashtags: (s, w) => s.strs(w.hashtags),
  mentions: (s, w) => s.strs(w.mentions),
  cashtags: (s, w) => s.strs(w.cashtags),
  urls: (s, w) => s.strs(w.urls),
  place: (s, w) =>
    w.place
      ? { id: s.str(w.place.id), full_name: s.str(w.place.fullName), country_code: s.optional(w.place.countryCode) }
      : null,
  in_reply_to_user_id: (s, w) => s.optional(w.inReplyToUserId),
  matching_rules: (s, w) => {
    const out = [];
    const range = w.matchingRules;
    for (let i = range.start; i < range.start + range.len; i++) {
      const rule = s.rules[i];
      out.push({ id: s.str(rule.id), tag: s.str(rule.tag) });
    }
    return out;
  },
  attrs: (s, w) => {
    const out = {};
    for (const attr of w.attrs || []) {
      const value = attr.value;
      out[attr.name] = value.tag === "integer" ? Number(value.val) : value.val;
    }
    return out;
  },
};

/** The author of a post. */
export class Author {
  constructor({ id = "", username = "", name = "", location = null, followers = 0, verified = false } = {}) {
    this.id = id;
    this.username = username;
    this.name = name;
    this.location = location;
    this.followers = followers;
    this.verified = verified;
  }
}

/**
 * A post, normalised from any source, with the Rust SDK's field names.
 *
 * Only the field groups the plugin declares in `reads` are filled; the others
 * are empty ("", [], null, false, zero). `new Post({ text: "hi", lang: "en" })`
 * builds a post for a test. `attrs` is an object of the attributes earlier
 * plugins set.
 */
export class Post {
  constructor(fields = {}) {
    this._s = null;
    this._w = null;
    this._v = {
      id: "",
      text: "",
      lang: "",
      author: new Author(fields.author || {}),
      metrics: { retweets: 0, likes: 0, replies: 0, quotes: 0 },
      hashtags: [],
      mentions: [],
      cashtags: [],
      urls: [],
      place: null,
      in_reply_to_user_id: null,
      matching_rules: [],
      attrs: {},
    };
    for (const key of Object.keys(fields)) {
      if (key === "author") continue;
      if (key in this._v) this._v[key] = fields[key];
    }
    this.created_at = fields.created_at ?? null;
    this.is_retweet = !!fields.is_retweet;
    this.is_reply = !!fields.is_reply;
    this.is_quote = !!fields.is_quote;
    this.has_media = !!fields.has_media;
  }

  static _of(storage, wire) {
    const post = Object.create(Post.prototype);
    post._s = storage;
    post._w = wire;
    post._v = {};
    post.created_at = wire.createdAt === undefined || wire.createdAt === null ? null : Number(wire.createdAt);
    post.is_retweet = wire.isRetweet;
    post.is_reply = wire.isReply;
    post.is_quote = wire.isQuote;
    post.has_media = wire.hasMedia;
    return post;
  }

  /** The value of attribute `name`, or undefined. */
  attr(name) {
    return this.attrs[name];
  }

  attr_f64(name) {
    const value = this.attrs[name];
    return typeof value === "number" ? value : undefined;
  }

  /**
   * Attribute `name` when it is an integer. JavaScript has one number type, so
   * a whole float (2.0) set by another plugin reads as an integer too.
   */
  attr_i64(name) {
    const value = this.attrs[name];
    return Number.isInteger(value) ? value : undefined;
  }

  attr_str(name) {
    const value = this.attrs[name];
    return typeof value === "string" ? value : undefined;
  }

  attr_bool(name) {
    const value = this.attrs[name];
    return typeof value === "boolean" ? value : undefined;
  }

  /** The tags of the rules that matched. */
  rule_tags() {
    return this.matching_rules.map((rule) => rule.tag);
  }

  /** Whether the post carries hashtag `tag` (with or without `#`, any case). */
  has_hashtag(tag) {
    const wanted = tag.replace(/^#+/, "").toLowerCase();
    return this.hashtags.some((hashtag) => hashtag.toLowerCase() === wanted);
  }
}

for (const name of Object.keys(READERS)) {
  Object.defineProperty(Post.prototype, name, {
    get() {
      let value = this._v[name];
      if (value === undefined) {
        value = READERS[name](this._s, this._w);
        this._v[name] = value;
      }
      return value;
    },
    set(value) {
      this._v[name] = value;
    },
  });
}

function attrValue(name, value) {
  if (typeof value === "boolean") return { tag: "boolean", val: value };
  if (typeof value === "bigint") return { tag: "integer", val: value };
  if (typeof value === "number") {
    return Number.isInteger(value) ? { tag: "integer", val: BigInt(value) } : { tag: "float", val: value };
  }
  if (typeof value === "string") return { tag: "text", val: value };
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) return { tag: "texts", val: [...value] };
  throw new TypeError(
    `attribute ${JSON.stringify(name)}: ${typeof value} is not an attribute value (use a boolean, number, string or an array of strings)`,
  );
}

/** `undefined` (unchanged), `null` (cleared) or a string, as option<option<string>>. */
function outerOption(value) {
  return value === undefined ? { tag: "none" } : { tag: "some", val: value ?? undefined };
}

/**
 * What a `map` or `filter_map` changes on a kept post. Methods chain:
 * `new Changes().set_attr("score", 0.5).set_lang("en")`. A whole number is
 * sent as an integer attribute; `set_attr(name, 2.0)` cannot be told from 2,
 * so use `set_float` for a float that happens to be whole.
 */
export class Changes {
  constructor() {
    this.text = undefined;
    this.lang = undefined;
    this.author_id = undefined;
    this.author_username = undefined;
    this.author_name = undefined;
    this.author_location = undefined;
    this.mentions = undefined;
    this.urls = undefined;
    this.in_reply_to_user_id = undefined;
    this.set_attrs = new Map();
    this.remove_attrs = [];
  }

  is_empty() {
    return (
      this.text === undefined &&
      this.lang === undefined &&
      this.author_id === undefined &&
      this.author_username === undefined &&
      this.author_name === undefined &&
      this.author_location === undefined &&
      this.mentions === undefined &&
      this.urls === undefined &&
      this.in_reply_to_user_id === undefined &&
      this.set_attrs.size === 0 &&
      this.remove_attrs.length === 0
    );
  }

  set_attr(name, value) {
    this.set_attrs.set(name, attrValue(name, value));
    this.remove_attrs = this.remove_attrs.filter((removed) => removed !== name);
    return this;
  }

  set_float(name, value) {
    this.set_attrs.set(name, { tag: "float", val: Number(value) });
    this.remove_attrs = this.remove_attrs.filter((removed) => removed !== name);
    return this;
  }

  remove_attr(name) {
    this.set_attrs.delete(name);
    if (!this.remove_attrs.includes(name)) this.remove_attrs.push(name);
    return this;
  }

  set_text(text) { this.text = String(text); return this; }
  set_lang(lang) { this.lang = String(lang); return this; }
  set_author_id(id) { this.author_id = String(id); return this; }
  set_author_username(username) { this.author_username = String(username); return this; }
  set_author_name(name) { this.author_name = String(name); return this; }
  /** `null` clears the location. */
  set_author_location(location) { this.author_location = location ?? null; return this; }
  set_mentions(mentions) { this.mentions = mentions.map(String); return this; }
  set_urls(urls) { this.urls = urls.map(String); return this; }
  /** `null` clears it. */
  set_in_reply_to_user_id(id) { this.in_reply_to_user_id = id ?? null; return this; }

  /** Applies these changes to `post` the way the host will (for tests). */
  apply(post) {
    for (const field of ["text", "lang", "mentions", "urls", "in_reply_to_user_id"]) {
      if (this[field] !== undefined) post[field] = this[field];
    }
    if (this.author_id !== undefined) post.author.id = this.author_id;
    if (this.author_username !== undefined) post.author.username = this.author_username;
    if (this.author_name !== undefined) post.author.name = this.author_name;
    if (this.author_location !== undefined) post.author.location = this.author_location;
    const attrs = post.attrs;
    for (const name of this.remove_attrs) delete attrs[name];
    for (const [name, value] of this.set_attrs) attrs[name] = value.tag === "integer" ? Number(value.val) : value.val;
    return post;
  }

  _wire() {
    return {
      text: this.text,
      lang: this.lang,
      authorId: this.author_id,
      authorUsername: this.author_username,
      authorName: this.author_name,
      // option<option<string>>: componentize-js spells the outer option as a
      // variant, { tag: "none" } or { tag: "some", val }, never as undefined.
      authorLocation: outerOption(this.author_location),
      mentions: this.mentions,
      urls: this.urls,
      inReplyToUserId: outerOption(this.in_reply_to_user_id),
      setAttrs: [...this.set_attrs].map(([name, value]) => ({ name, value })),
      removeAttrs: [...this.remove_attrs],
    };
  }
}

function failure(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

let initFunction = null;

/** `init(function (config) {...})`: runs once per instance with the config object; throwing rejects it. */
export function init(fn) {
  initFunction = fn;
  return fn;
}

function entry(kind, fn, options = {}) {
  if (typeof fn !== "function") throw new TypeError(`${kind}: give the plugin's function`);
  const fnName = fn.name || kind;
  const name = options.name || fnName.replace(/_/g, "-");
  const version = options.version || "0.1.0";
  const groups = options.reads || Object.keys(FIELD_GROUPS);
  const reads = {};
  for (const group of groups) {
    const flag = FIELD_GROUPS[group];
    if (!flag) throw new Error(`reads: unknown field ${JSON.stringify(group)}; known: ${Object.keys(FIELD_GROUPS).join(", ")}`);
    reads[flag] = true;
  }
  const keep = { tag: "keep", val: undefined };
  const drop = { tag: "drop", val: `rejected by ${fnName}` };
  return {
    info() {
      return { name, version, reads };
    },
    init(config) {
      let values;
      try {
        values = config.trim() ? JSON.parse(config) : {};
        if (values === null) values = {};
        if (typeof values !== "object" || Array.isArray(values)) {
          throw new Error(`config must be a table (a JSON object), got ${config}`);
        }
        if (initFunction) initFunction(values);
      } catch (error) {
        // jco turns a thrown value into `result::err`.
        throw failure(error);
      }
    },
    process(batch) {
      const storage = new Storage(batch);
      const posts = batch.posts;
      const outcomes = new Array(posts.length);
      for (let i = 0; i < posts.length; i++) {
        const post = Post._of(storage, posts[i]);
        try {
          const answer = fn(post);
          if (kind === "filter") {
            outcomes[i] = answer ? keep : drop;
          } else if (answer === null || answer === undefined || answer === false) {
            outcomes[i] = kind === "filter_map" ? drop : keep;
          } else if (answer === true) {
            outcomes[i] = keep;
          } else if (answer instanceof Changes) {
            outcomes[i] = answer.is_empty() ? keep : { tag: "keep", val: answer._wire() };
          } else {
            throw new TypeError(`${fnName} returned ${typeof answer}; a ${kind} returns Changes or null`);
          }
        } catch (error) {
          outcomes[i] = { tag: "fail", val: failure(error) };
        }
      }
      return outcomes;
    },
  };
}

/** `filter(fn, { reads, name, version })`: `fn(post)` true keeps, false drops. Export the result as `processor`. */
export function filter(fn, options) {
  return entry("filter", fn, options);
}

/** `map(fn, options)`: `fn(post)` returns `Changes` (or null: unchanged). */
export function map(fn, options) {
  return entry("map", fn, options);
}

/** `filter_map(fn, options)`: `fn(post)` returns `Changes` or `true` to keep, null to drop. */
export function filter_map(fn, options) {
  return entry("filter_map", fn, options);
}
