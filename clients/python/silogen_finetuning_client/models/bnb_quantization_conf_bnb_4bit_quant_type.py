from typing import Literal

BnBQuantizationConfBnb4BitQuantType = Literal["fp4", "nf4"]

BN_B_QUANTIZATION_CONF_BNB_4_BIT_QUANT_TYPE_VALUES: set[BnBQuantizationConfBnb4BitQuantType] = {
    "fp4",
    "nf4",
}


def check_bn_b_quantization_conf_bnb_4_bit_quant_type(value: str) -> BnBQuantizationConfBnb4BitQuantType:
    if value in BN_B_QUANTIZATION_CONF_BNB_4_BIT_QUANT_TYPE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {BN_B_QUANTIZATION_CONF_BNB_4_BIT_QUANT_TYPE_VALUES!r}"
    )
