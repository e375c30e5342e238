// The one way the page builds its elements:
//
//   element("td", { className: "count", title: "3 images", data: { count: 3 } }, "3")
//
// is <td class="count" title="3 images" data-count="3">3</td>. In `properties`, `data` fills the
// data-* attributes (values become strings), `style` the inline style, a name with a dash
// ("aria-pressed") is set as an attribute, and any other name is the element's property of that
// name (className, id, type, title). Children are elements or strings; null and undefined are
// skipped, so a child may be conditional.

/** A new `tag` element with `properties` and `children` (see above). */
export function element(tag, properties = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(properties)) {
    if (name === "data") {
      for (const [key, item] of Object.entries(value)) node.dataset[key] = String(item);
    } else if (name === "style") {
      Object.assign(node.style, value);
    } else if (name.includes("-")) {
      node.setAttribute(name, String(value));
    } else {
      node[name] = value;
    }
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}
