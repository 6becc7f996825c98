// Keeps posts whose text contains one of `config.keywords` (case-insensitive)
// and records which one matched in the `keyword` attribute.

import { Changes, filter_map, init } from "./tweetpipe_plugin.js";

let keywords = [];

init(function (config) {
  if (config.keywords === undefined) throw new Error("config.keywords is missing");
  if (!Array.isArray(config.keywords) || config.keywords.length === 0) {
    throw new Error("config.keywords must list at least one keyword");
  }
  keywords = config.keywords.map((keyword) => String(keyword).toLowerCase());
});

export const processor = filter_map(
  function keyword_filter(post) {
    const text = post.text.toLowerCase();
    const keyword = keywords.find((keyword) => text.includes(keyword));
    return keyword === undefined ? null : new Changes().set_attr("keyword", keyword);
  },
  { name: "keyword-filter", reads: ["text"] },
);
