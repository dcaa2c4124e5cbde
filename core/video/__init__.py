"""Video: a clip stylised frame by frame without flicker, after Ruder, Dosovitskiy & Brox ("Artistic style transfer
for videos", GCPR 2016). ``flow`` measures how the photo frames move (OpenCV's DIS, no network weights) and which
of that motion can be trusted; ``clip`` runs the engine on each frame with a temporal term towards the previous
result carried along that motion; ``codec`` reads and writes the clips (PyAV). Like the rest of ``core`` it knows
nothing of HTTP or queues: the frames it finishes go to whoever asked, who may keep them as checkpoints.
"""
