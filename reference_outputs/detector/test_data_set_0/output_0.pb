BboxesJ€^e@Y@^DAª8RAð´Ø¿H:ñ¿€þ†Av’‚Aú3”AòUY@ÝáAbúRAP£cAl¾à¿Þ…B=—‚A†f"@&îšAx"DA
éA ¸ä¿*–dA‡•†A.‘B¡A”AÞðšA™âAJéAúðcAX¡dA€‹B|ŠB