"""The scene of packaging/napari/preview.png, the napari hub's preview of the plugin.

    /work/shared/tools/screenshot -o shot.png -s 1600x1000 -n napari -w 6 \
        -d 'xdotool mousemove 1312 355 click 1' -d 'sleep 8' -- python packaging/napari/preview_scene.py
    convert shot.png -crop 1560x960+0+0 -resize 1200x -strip packaging/napari/preview.png

The click presses the GrabCut form's Run button; the box layer is its only seed.
"""

import napari
import numpy as np
from skimage import data

from maskwork.napari.manifest import PLUGIN_NAME

viewer = napari.Viewer(title="napari")
viewer.add_image(data.coffee(), name="coffee", rgb=True)
viewer.add_shapes([np.array([[25, 45], [25, 485], [360, 485], [360, 45]])], shape_type="rectangle",
                  name="box", edge_color="yellow", face_color="transparent", edge_width=3)  # fmt: skip
viewer.window.add_plugin_dock_widget(PLUGIN_NAME, "Segmentation: GrabCut")
viewer.window._qt_window.resize(1560, 960)
napari.run()
