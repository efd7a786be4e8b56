/**
 * ESLint rule `migrator/layers`: a module in src/ imports only from its own folder or from a lower
 * layer, so the tree reads bottom-up and has no folder cycles. The table is the architecture; the
 * README's "Architecture" section draws the same picture. A backward import fails `npm run lint`
 * (and so CI) with the two layers named.
 *
 * Folders in one layer are siblings: they share what is below them and never import each other
 * (capture, apply, the initial load and verification are independent stages of the pipeline).
 */
import { dirname, relative, resolve, sep } from 'node:path';

/** Lowest first. Entries are folders of src/, or single modules where a folder spans layers. */
export const LAYERS = [
  ['util', 'observability/stats', 'observability/health'],
  ['model'],
  ['config'],
  ['db'],
  ['state'],
  ['transport'],
  ['source', 'apply', 'initial-load', 'verify'],
  ['orchestration'],
  ['observability/metrics', 'observability/server'],
  ['cli'],
];

/** The layer index and group (the matching table entry) of a path relative to src/, or undefined. */
export function layerOf(pathInSrc) {
  const p = pathInSrc.split(sep).join('/').replace(/\.(ts|js)$/, '');
  let best;
  LAYERS.forEach((entries, rank) => {
    for (const group of entries) {
      if ((p === group || p.startsWith(`${group}/`)) && (!best || group.length > best.group.length)) best = { rank, group };
    }
  });
  return best;
}

export const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'src/ modules import only from their own folder or a lower layer (scripts/eslint/layers.js)' },
    schema: [],
    messages: {
      backward: "'{{from}}' (layer {{fromRank}}) must not import '{{to}}' (layer {{toRank}}): lower layers never import higher ones (scripts/eslint/layers.js)",
      sibling: "'{{from}}' must not import its sibling '{{to}}' (both layer {{fromRank}}): move the shared part down a layer (scripts/eslint/layers.js)",
      unknown: "'{{from}}' is in no layer of scripts/eslint/layers.js: add its folder to the table",
    },
  },
  create(context) {
    const file = context.filename ?? context.getFilename();
    const srcRoot = resolve(context.cwd ?? process.cwd(), 'src');
    const rel = relative(srcRoot, file);
    if (rel.startsWith('..')) return {};
    const from = layerOf(rel);
    const check = (node, spec) => {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      if (!from) {
        context.report({ node, messageId: 'unknown', data: { from: rel } });
        return;
      }
      const targetRel = relative(srcRoot, resolve(dirname(file), spec));
      if (targetRel.startsWith('..')) return;
      const to = layerOf(targetRel);
      if (!to || to.group === from.group) return;
      const data = { from: rel, to: targetRel, fromRank: from.rank, toRank: to.rank };
      if (to.rank > from.rank) context.report({ node, messageId: 'backward', data });
      else if (to.rank === from.rank) context.report({ node, messageId: 'sibling', data });
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value),
    };
  },
};

export default { rules: { layers: layersRule } };
