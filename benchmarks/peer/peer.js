// smartcrop.js on sharp, as smartcrop-sharp 2.0.8 runs it (its image operations, copied
// below so that sharp can be pinned at 0.34.5: smartcrop-sharp's own peer range is ^0.32).
// A worker for bench_peer.py: one JSON request per stdin line, one JSON answer per line.
//   {"path": "photo.jpg", "ratios": [[w, h], ...], "crops": true, "quality": 85, "parallel": false}
// "parallel": every ratio's analysis, then every crop, at once (Promise.all), as a user with
// two cores would write it; otherwise one after another, as smartcrop-sharp's README does.
// -> {"boxes": [[x, y, w, h], ...], "ms": 123.4, "bytes": [n, ...]}
// The photo's bytes are read once and kept, as the engine's side gets its bytes in memory;
// "ms" is timed inside this process, from the bytes to the last crop's JPEG buffer.
"use strict";
const fs = require("fs");
const readline = require("readline");
const sharp = require("sharp");
const smartcrop = require("smartcrop");

sharp.cache(false); // no result cache: every run decodes, as a fresh upload would
// sharp sets libvips' concurrency to 1 on glibc Linux without jemalloc, whatever
// VIPS_CONCURRENCY says; the benchmark's two-core run asks for more explicitly.
if (process.env.VIPS_CONCURRENCY) sharp.concurrency(Number(process.env.VIPS_CONCURRENCY));

function rgb2rgba(input) {
  const output = Buffer.alloc((input.length / 3) * 4);
  for (let i = 0; i < input.length; i += 3) {
    output[(i / 3) * 4] = input[i];
    output[(i / 3) * 4 + 1] = input[i + 1];
    output[(i / 3) * 4 + 2] = input[i + 2];
    output[(i / 3) * 4 + 3] = 255;
  }
  return output;
}

const iop = {
  open(src) {
    const image = sharp(src);
    return image.metadata().then((m) => ({ width: m.width, height: m.height, _sharp: image }));
  },
  resample(image, width, height) {
    return Promise.resolve({ width: ~~width, height: ~~height, _sharp: image._sharp });
  },
  getData(image) {
    return image._sharp
      .resize(image.width, image.height, { kernel: sharp.kernel.cubic })
      .raw()
      .toBuffer()
      .then((data) => {
        if (data.length === image.width * image.height * 3) data = rgb2rgba(data);
        return new smartcrop.ImgData(image.width, image.height, data);
      });
  },
};

const cache = new Map();
function bytesOf(path) {
  if (!cache.has(path)) cache.set(path, fs.readFileSync(path));
  return cache.get(path);
}

async function run(req) {
  const data = bytesOf(req.path);
  const start = process.hrtime.bigint();
  // smartcrop-sharp's README: one crop() per size; the size sets the ratio.
  const analyse = ([w, h]) =>
    smartcrop.crop(data, { width: w, height: h, imageOperations: iop }).then((result) => {
      const c = result.topCrop;
      return [c.x, c.y, c.width, c.height];
    });
  const write = ([x, y, w, h]) =>
    sharp(data)
      .extract({ left: x, top: y, width: w, height: h })
      .jpeg({ quality: req.quality || 85 })
      .toBuffer()
      .then((out) => out.length);
  const inTurn = async (items, f) => {
    const out = [];
    for (const item of items) out.push(await f(item));
    return out;
  };
  const each = req.parallel ? (items, f) => Promise.all(items.map(f)) : inTurn;
  const boxes = await each(req.ratios, analyse);
  const bytes = req.crops ? await each(boxes, write) : [];
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { boxes, ms, bytes };
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on("line", (line) => {
  chain = chain.then(async () => {
    let answer;
    try {
      answer = await run(JSON.parse(line));
    } catch (e) {
      answer = { error: String(e && e.message ? e.message : e) };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
  });
});
console.log(JSON.stringify({ ready: true, sharp: sharp.versions.sharp, vips: sharp.versions.vips, concurrency: sharp.concurrency() }));
