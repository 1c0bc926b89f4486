// A result layer over the picture under it: the page's copy of the one "over" rule,
// paintwire.protocol.compositing (docs/protocol.md section 9). The browser's own
// drawImage blends premultiplied 8-bit values and rounds differently, so the page
// does the maths itself, in integers, as the server and the CLI do; the cases in
// tests/vectors/over.json check both copies byte for byte.
//
// Straight alpha, a and b the top's and the bottom's alpha in 0..1:
//   out_a = a + b (1 - a),  out_rgb = (rgb_top a + rgb_under b (1 - a)) / out_a,
// each rounded to the nearest 8-bit value, halves up. Where the top's alpha is 0
// the pixel under it is kept as it was.

// `top` over `under`: RGBA byte arrays of one length. Returns a new Uint8ClampedArray.
export function over(top, under) {
  if (top.length !== under.length || top.length % 4 !== 0) throw new Error("over needs two RGBA arrays of one size");
  const out = new Uint8ClampedArray(under);
  for (let i = 0; i < top.length; i += 4) {
    const a = top[i + 3];
    if (a === 0) continue;
    const below = under[i + 3] * (255 - a); // the bottom's weight, in 255ths of 255ths
    const weight = a * 255 + below;
    for (let c = 0; c < 3; c++) {
      const colour = top[i + c] * a * 255 + under[i + c] * below;
      out[i + c] = Math.floor((2 * colour + weight) / (2 * weight));
    }
    out[i + 3] = Math.floor((weight + 127) / 255);
  }
  return out;
}

// `picture` (an ImageData) with `layer` (an ImageData) over it, its top-left corner at
// (x, y); what lies outside the picture is left out. Changes `picture` in place.
export function placeOver(picture, layer, x, y) {
  const x0 = Math.max(0, x), y0 = Math.max(0, y);
  const x1 = Math.min(picture.width, x + layer.width), y1 = Math.min(picture.height, y + layer.height);
  if (x1 <= x0 || y1 <= y0) return picture;
  const run = (x1 - x0) * 4;
  for (let row = y0; row < y1; row++) {
    const at = (row * picture.width + x0) * 4;
    const from = ((row - y) * layer.width + (x0 - x)) * 4;
    picture.data.set(over(layer.data.subarray(from, from + run), picture.data.subarray(at, at + run)), at);
  }
  return picture;
}
