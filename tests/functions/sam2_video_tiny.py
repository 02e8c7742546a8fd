"""Tiny random-weight SAM 2 / EdgeTAM video models (fixed seed) for fast tests."""

from __future__ import annotations

SIZE = 128


def tiny_video_config(family: str):
    from transformers import (
        EdgeTamVideoConfig,
        EdgeTamVisionConfig,
        Sam2HieraDetConfig,
        Sam2VideoConfig,
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
        Sam2VisionConfig,
        TimmWrapperConfig,
    )

    sizes = [[SIZE // 4] * 2, [SIZE // 8] * 2, [SIZE // 16] * 2]
    if family == "sam2":
        hiera = Sam2HieraDetConfig(
            hidden_size=16,
            num_attention_heads=1,
            blocks_per_stage=[1, 1, 2, 1],
            embed_dim_per_stage=[16, 32, 64, 128],
            num_attention_heads_per_stage=[1, 1, 2, 2],
            global_attention_blocks=[3],
            window_size_per_stage=[8, 4, 4, 4],
            image_size=[SIZE, SIZE],
        )
        vision = Sam2VisionConfig(
            backbone_config=hiera,
            backbone_channel_list=[128, 64, 32, 16],
            backbone_feature_sizes=sizes,
            fpn_hidden_size=128,
        )
        cls = Sam2VideoConfig
        extra = {"memory_attention_feed_forward_hidden_size": 64}
    else:
        backbone = TimmWrapperConfig(
            architecture="repvit_m1.dist_in1k",
            model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
        )
        vision = EdgeTamVisionConfig(backbone_config=backbone, backbone_feature_sizes=sizes, fpn_hidden_size=128)
        cls = EdgeTamVideoConfig
        extra = {
            "memory_attention_mlp_hidden_size": 64,
            "memory_attention_rope_k_sizes": [4, 4],
            "perceiver_resampler_num_latents": 16,
            "perceiver_resampler_num_latents_2d": 16,
        }
    # the memory's width is 64 in transformers' SAM 2 video models; the model's must be larger
    return cls(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=128, image_size=SIZE).to_dict(),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(
            hidden_size=128, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ).to_dict(),
        image_size=SIZE,
        memory_attention_hidden_size=128,
        memory_attention_rope_feat_sizes=[SIZE // 16] * 2,
        memory_attention_num_layers=2,
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=64,
        **extra,
    )


def tiny_video_model(family: str = "sam2"):
    import torch
    from transformers import EdgeTamVideoModel, Sam2VideoModel

    torch.manual_seed(0)
    cls = Sam2VideoModel if family == "sam2" else EdgeTamVideoModel
    return cls(tiny_video_config(family)).eval()


def tiny_video_processor():
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    size = {"height": SIZE, "width": SIZE}
    return Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=size), video_processor=Sam2VideoVideoProcessor(size=size)
    )


def tiny_video_tracker(family: str = "sam2", **params):
    from autoannotate.functions.sam2_video import VideoSamTracker

    params = {"min_score": 0.0, "min_pixels": 0, **params}
    return VideoSamTracker(tiny_video_model(family), tiny_video_processor(), model_version=f"tiny-{family}", **params)


def save_tiny_video_model(folder, family: str = "sam2") -> str:
    """A tiny model saved as a Hugging Face folder (loaded through the normal weights path)."""
    tiny_video_model(family).save_pretrained(str(folder))
    tiny_video_processor().save_pretrained(str(folder))
    return str(folder)
