"""Makes docs/families.jpg: one photo through the four families of nst_jax, side by side.

  .venv/bin/python docs/families.py   # ~2 minutes on a 2-core CPU; writes docs/families.jpg

Photo: ../shared/images/tubingen.jpg; painting: ../shared/images/starry_night.jpg.
Optimisation: configs/gatys2015.py at 256 px, 200 L-BFGS steps from the photo (the README's
first command). The one-pass networks run at 512 px (they were trained on larger images than
256 px, where their brush strokes swallow the houses) and are shown downscaled: the built-in
26-style network's style 25, and for any painting Ghiasi et al. 2017 and AdaIN (the shipped
decoder).
"""

from pathlib import Path
import subprocess
import sys
import tempfile

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared' / 'images'
PHOTO, PAINTING = SHARED / 'tubingen.jpg', SHARED / 'starry_night.jpg'
SIZE = 256
ONE_PASS_SIZE = 512


def run(out: Path, *args: str) -> Path:
  subprocess.run([sys.executable, str(ROOT / 'run.py'), *args, f'--content={PHOTO}',
                  f'--output={out}'], cwd=ROOT, check=True)
  return out


def main() -> None:
  tmp = Path(tempfile.mkdtemp())
  cells = [
      ('photo', PHOTO),
      ('painting', PAINTING),
      ('optimisation (Gatys, 200 L-BFGS steps)',
       run(tmp / 'gatys.png', '--config=configs/gatys2015.py', f'--style={PAINTING}',
           f'--config.size={SIZE}', '--config.num_steps=200', '--config.init=content')),
      ('built-in fast style 25 (Dumoulin)',
       run(tmp / 'fast.png', '--config=configs/fast.py', f'--config.size={ONE_PASS_SIZE}',
           '--config.style_index=25')),
      ('any painting: Ghiasi',
       run(tmp / 'ghiasi.png', '--config=configs/arbitrary.py', f'--style={PAINTING}',
           f'--config.size={ONE_PASS_SIZE}')),
      ('any painting: AdaIN',
       run(tmp / 'adain.png', '--config=configs/arbitrary.py', f'--style={PAINTING}',
           f'--config.size={ONE_PASS_SIZE}', '--config.method=adain')),
  ]
  tiles = []
  for label, path in cells:
    im = Image.open(path).convert('RGB')
    im.thumbnail((SIZE, SIZE))
    tile = Image.new('RGB', (SIZE, SIZE + 22), 'white')
    tile.paste(im, ((SIZE - im.width) // 2, 22 + (SIZE - im.height) // 2))
    ImageDraw.Draw(tile).text((4, 5), label, fill='black')
    tiles.append(tile)
  sheet = Image.new('RGB', (SIZE * 3, (SIZE + 22) * 2), 'white')
  for i, t in enumerate(tiles):
    sheet.paste(t, ((i % 3) * SIZE, (i // 3) * (SIZE + 22)))
  sheet.save(ROOT / 'docs' / 'families.jpg', quality=88)


if __name__ == '__main__':
  main()
