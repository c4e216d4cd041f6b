// A thumbnail of the user's own FITS file, drawn in the browser from the file they chose:
// the api keeps no thumbnail, and reading a few hundred rows of a local file costs the
// server nothing. Only the first image plane of a plain (uncompressed) image HDU is read,
// one sampled row at a time, so a multi-gigabyte cube costs a few megabytes of reads.

const BLOCK = 2880;
const CARD = 80;
const MAX_HEADER_BLOCKS = 200;

/** Header cards of the HDU starting at ``offset``: ``{cards, dataOffset}`` or null. */
async function readHeader(file, offset) {
  const cards = new Map();
  for (let block = 0; block < MAX_HEADER_BLOCKS; block += 1) {
    const start = offset + block * BLOCK;
    if (start + BLOCK > file.size) return null;
    const text = new TextDecoder("latin1").decode(await file.slice(start, start + BLOCK).arrayBuffer());
    for (let i = 0; i < BLOCK; i += CARD) {
      const card = text.slice(i, i + CARD);
      const key = card.slice(0, 8).trim();
      if (key === "END") return { cards, dataOffset: start + BLOCK };
      if (card.slice(8, 10) !== "= ") continue;
      let value = card.slice(10).trim();
      if (value.startsWith("'")) value = value.slice(1, value.indexOf("'", 1)).trim();
      else value = value.split("/")[0].trim();
      if (!cards.has(key)) cards.set(key, value);
    }
  }
  return null;
}

function numberCard(cards, key, fallback) {
  const value = Number(cards.get(key));
  return cards.has(key) && Number.isFinite(value) ? value : fallback;
}

/** The first HDU holding a 2-D (or larger) plain image: ``{cards, dataOffset}`` or null. */
export async function findImage(file) {
  let offset = 0;
  for (let hdu = 0; hdu < 8; hdu += 1) {
    const header = await readHeader(file, offset);
    if (!header) return null;
    const { cards, dataOffset } = header;
    const naxis = numberCard(cards, "NAXIS", 0);
    const bitpix = numberCard(cards, "BITPIX", 8);
    const isImage = hdu === 0 || cards.get("XTENSION") === "IMAGE";
    if (isImage && naxis >= 2 && numberCard(cards, "NAXIS1", 0) > 0 && numberCard(cards, "NAXIS2", 0) > 0) {
      return { cards, dataOffset };
    }
    let size = naxis > 0 ? Math.abs(bitpix) / 8 : 0;
    for (let i = 1; i <= naxis; i += 1) size *= numberCard(cards, `NAXIS${i}`, 0);
    size = size * 1 + numberCard(cards, "PCOUNT", 0) * (naxis > 0 ? 1 : 0);
    offset = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
  }
  return null;
}

const READERS = {
  8: (view, at) => view.getUint8(at),
  16: (view, at) => view.getInt16(at, false),
  32: (view, at) => view.getInt32(at, false),
  64: (view, at) => Number(view.getBigInt64(at, false)),
  [-32]: (view, at) => view.getFloat32(at, false),
  [-64]: (view, at) => view.getFloat64(at, false),
};

/** Sampled pixel values ``size x size`` (row 0 at the top, FITS row 1 at the bottom). */
async function samplePixels(file, image, size) {
  const { cards, dataOffset } = image;
  const bitpix = numberCard(cards, "BITPIX", -32);
  const read = READERS[bitpix];
  if (!read) return null;
  const nx = numberCard(cards, "NAXIS1", 0);
  const ny = numberCard(cards, "NAXIS2", 0);
  const bytes = Math.abs(bitpix) / 8;
  const scale = numberCard(cards, "BSCALE", 1);
  const zero = numberCard(cards, "BZERO", 0);
  const blank = cards.has("BLANK") ? numberCard(cards, "BLANK", null) : null;
  const width = Math.min(size, nx);
  const height = Math.min(size, ny);
  const values = new Float64Array(width * height);
  for (let row = 0; row < height; row += 1) {
    const y = Math.floor(((height - 1 - row) + 0.5) * ny / height);
    const start = dataOffset + y * nx * bytes;
    const view = new DataView(await file.slice(start, start + nx * bytes).arrayBuffer());
    if (view.byteLength < nx * bytes) return null;
    for (let col = 0; col < width; col += 1) {
      const x = Math.floor((col + 0.5) * nx / width);
      const raw = read(view, x * bytes);
      values[row * width + col] = bitpix > 0 && raw === blank ? NaN : raw * scale + zero;
    }
  }
  return { values, width, height, nx, ny };
}

/** Grey levels 0..255 of ``values``: asinh between the 0.5th and 99.8th percentiles (pure). */
export function stretch(values) {
  const finite = Array.from(values).filter(Number.isFinite).sort((a, b) => a - b);
  const grey = new Uint8ClampedArray(values.length).fill(255);
  if (!finite.length) return grey;
  const lo = finite[Math.floor(0.005 * (finite.length - 1))];
  let hi = finite[Math.floor(0.998 * (finite.length - 1))];
  if (!(hi > lo)) hi = lo + 1;
  const soft = 0.1;
  const norm = Math.asinh(1 / soft);
  for (let i = 0; i < values.length; i += 1) {
    if (!Number.isFinite(values[i])) continue;
    const t = Math.min(1, Math.max(0, (values[i] - lo) / (hi - lo)));
    grey[i] = Math.round(255 * (1 - Math.asinh(t / soft) / norm));
  }
  return grey;
}

/**
 * Draw the thumbnail of ``file`` on ``canvas``; returns ``{nx, ny}`` or null when the
 * file is not an image this reader knows (compressed, a table, not FITS).
 */
export async function drawFitsThumbnail(file, canvas) {
  const image = await findImage(file);
  if (!image) return null;
  const sample = await samplePixels(file, image, canvas.width);
  if (!sample) return null;
  const grey = stretch(sample.values);
  canvas.width = sample.width;
  canvas.height = sample.height;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(sample.width, sample.height);
  for (let i = 0; i < grey.length; i += 1) {
    pixels.data[4 * i] = pixels.data[4 * i + 1] = pixels.data[4 * i + 2] = grey[i];
    pixels.data[4 * i + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
  return { nx: sample.nx, ny: sample.ny };
}
