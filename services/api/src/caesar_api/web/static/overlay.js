// Sources drawn over the preview PNG (an SVG on top of the image), placed with the
// preview's geometry (``preview.json``, written by the runner beside ``preview.png``):
// the PNG's size, the box of the image inside it, the WCS of the pixels in that box.
// A job without ``preview.json`` gets no overlay; the PNG has its own markers anyway.

import { skyToPixel } from "./wcs.js";

const SVG = "http://www.w3.org/2000/svg";

function number(value) {
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

/**
 * From ``preview.json`` (version 1: ``width``, ``height``, ``axes_box = [x0, y0, x1, y1]``
 * with the PNG's origin top-left, ``image_shape = [ny, nx]`` of the displayed grid, and
 * ``wcs``, the cards of that grid) to ``{width, height, toPng(ra, dec), pxPerArcsec}``
 * in PNG pixels, or null when it lacks what is needed (pure). The runner documents the
 * mapping: ``png_x = x0 + (x + 0.5) (x1 - x0) / nx``, ``png_y = y1 - (y + 0.5) (y1 - y0) / ny``.
 */
export function previewGeometry(meta) {
  if (!meta || typeof meta !== "object" || !meta.wcs) return null;
  const width = number(meta.width);
  const height = number(meta.height);
  const box = Array.isArray(meta.axes_box) ? meta.axes_box.map(number) : [];
  const shape = Array.isArray(meta.image_shape) ? meta.image_shape.map(number) : [];
  if (!width || !height || box.length !== 4 || box.includes(null) || shape.length !== 2 || !shape[0] || !shape[1]) {
    return null;
  }
  const [x0, y0, x1, y1] = box;
  const [ny, nx] = shape;
  const sky = skyToPixel(meta.wcs);
  const sx = (x1 - x0) / nx;
  const sy = (y1 - y0) / ny;
  return {
    width,
    height,
    toPng(ra, dec) {
      const [px, py] = sky.toPixel(ra, dec);
      return [x0 + (px + 0.5) * sx, y1 - (py + 0.5) * sy];
    },
    pxPerArcsec: sx / sky.arcsecPerPixel,
    inside(x, y) {
      return x >= x0 && x <= x1 && y >= y0 && y <= y1;
    },
  };
}

/** Draw every source of the catalogue JSON; returns the number drawn. */
export function drawSources(svg, geometry, sources) {
  svg.replaceChildren();
  if (!geometry) return 0;
  svg.setAttribute("viewBox", `0 0 ${geometry.width} ${geometry.height}`);
  let drawn = 0;
  sources.forEach((source, index) => {
    if (typeof source.ra !== "number" || typeof source.dec !== "number") return;
    const [x, y] = geometry.toPng(source.ra, source.dec);
    if (!Number.isFinite(x) || !Number.isFinite(y) || !geometry.inside(x, y)) return;
    const maj = typeof source.maj === "number" && source.maj > 0 ? source.maj : null;
    const min = typeof source.min === "number" && source.min > 0 ? source.min : maj;
    const shape = document.createElementNS(SVG, "ellipse");
    const ry = maj ? Math.max(2, (maj / 2) * geometry.pxPerArcsec) : 4;
    const rx = min ? Math.max(2, (min / 2) * geometry.pxPerArcsec) : 4;
    shape.setAttribute("cx", x.toFixed(2));
    shape.setAttribute("cy", y.toFixed(2));
    shape.setAttribute("rx", rx.toFixed(2));
    shape.setAttribute("ry", ry.toFixed(2));
    const pa = typeof source.pa === "number" ? source.pa : 0;
    // PA runs from north through east: counter-clockwise on a north-up, east-left image.
    shape.setAttribute("transform", `rotate(${(-pa).toFixed(2)} ${x.toFixed(2)} ${y.toFixed(2)})`);
    shape.dataset.index = String(index);
    svg.append(shape);
    drawn += 1;
  });
  return drawn;
}

/** Emphasise the marker of source ``index`` (null: none). */
export function highlight(svg, index) {
  for (const node of svg.querySelectorAll(".hot")) node.classList.remove("hot");
  if (index === null) return;
  const node = svg.querySelector(`[data-index="${index}"]`);
  if (node) node.classList.add("hot");
}
