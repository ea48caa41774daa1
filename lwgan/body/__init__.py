"""The body: SMPL through smplx (or the generated stand-in in SMPL format), weak-perspective camera, head box."""

from lwgan.body.camera import ndc_to_pixels, pixels_to_ndc, project
from lwgan.body.convert import convert_smpl_pickle, read_smpl_arrays
from lwgan.body.generate import generate_body_model
from lwgan.body.landmarks import head_box
from lwgan.body.model import BodyModel, BodyOutput, generated_model_path, load_body_model
from lwgan.body.skeleton import FACE_VERTEX_IDS, JOINT_NAMES, PARENTS

__all__ = [
    "BodyModel", "BodyOutput", "FACE_VERTEX_IDS", "JOINT_NAMES", "PARENTS", "convert_smpl_pickle",
    "generate_body_model", "generated_model_path", "head_box", "load_body_model", "ndc_to_pixels",
    "pixels_to_ndc", "project", "read_smpl_arrays",
]
