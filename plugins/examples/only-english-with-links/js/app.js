// Keeps English posts that carry at least one link; drops the rest.

import { filter } from "./tweetpipe_plugin.js";

export const processor = filter(
  function only_english_with_links(post) {
    return post.lang === "en" && post.urls.length > 0;
  },
  { name: "only-english-with-links", reads: ["lang", "urls"] },
);
